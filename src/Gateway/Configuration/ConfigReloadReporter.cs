namespace Gateway.Configuration;

/// <summary>Says in the log what became of each edit of the configuration file.</summary>
public sealed class ConfigReloadReporter : IHostedService
{
    private readonly ReloadableJsonConfigurationSource _source;
    private readonly ILogger<ConfigReloadReporter> _logger;

    public ConfigReloadReporter(ReloadableJsonConfigurationSource source, ILogger<ConfigReloadReporter> logger)
    {
        _source = source;
        _logger = logger;
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _source.Reloaded += OnReloaded;
        _source.ReloadFailed += OnReloadFailed;
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        _source.Reloaded -= OnReloaded;
        _source.ReloadFailed -= OnReloadFailed;
        return Task.CompletedTask;
    }

    private void OnReloaded() => Log.Reloaded(_logger, _source.FullPath);

    private void OnReloadFailed(Exception ex) => Log.ReloadFailed(_logger, _source.FullPath, ex.Message);
}
