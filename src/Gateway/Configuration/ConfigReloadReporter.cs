using System.Diagnostics.Metrics;
using Gateway.Metrics;
using Yarp.ReverseProxy.Configuration;

namespace Gateway.Configuration;

/// <summary>
/// Says in the log and in metrics what became of each edit of the configuration file: whether it parsed
/// (<see cref="ReloadableJsonConfigurationSource"/>) and whether YARP applied it (<see cref="IConfigChangeListener"/>).
/// </summary>
public sealed class ConfigReloadReporter : IHostedService, IConfigChangeListener
{
    private readonly ReloadableJsonConfigurationSource _source;
    private readonly ILogger<ConfigReloadReporter> _logger;
    private readonly Counter<long> _reloads;
    private IProxyConfig[]? _applied;

    public ConfigReloadReporter(ReloadableJsonConfigurationSource source, GatewayMeter meter, ILogger<ConfigReloadReporter> logger)
    {
        _source = source;
        _logger = logger;
        _reloads = meter.Meter.CreateCounter<long>("gateway.config.reloads", "{reload}",
            "Edits of the configuration file, by result: success (applied) or failure (the running configuration stayed)");
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

    private void OnReloadFailed(Exception ex)
    {
        Log.ReloadFailed(_logger, _source.FullPath, ex.Message);
        Count("failure");
    }

    void IConfigChangeListener.ConfigurationLoadingFailed(IProxyConfigProvider configProvider, Exception exception) => Count("failure");

    void IConfigChangeListener.ConfigurationLoaded(IReadOnlyList<IProxyConfig> proxyConfigs)
    {
    }

    void IConfigChangeListener.ConfigurationApplyingFailed(IReadOnlyList<IProxyConfig> proxyConfigs, Exception exception)
    {
        Log.ReloadFailed(_logger, _source.FullPath, Proxy.ProxyConfigErrors.Describe(exception));
        Count("failure");
    }

    void IConfigChangeListener.ConfigurationApplied(IReadOnlyList<IProxyConfig> proxyConfigs)
    {
        // The first application is the startup load, not a reload; the startup warm-up's own provider changes
        // twice (its route comes and goes), which is no reload of the file either.
        var fromFile = proxyConfigs.Where(config => !Warmup.WarmupRoute.IsWarmupRevision(config)).ToArray();
        var previous = Interlocked.Exchange(ref _applied, fromFile);
        if (previous is not null && !previous.SequenceEqual(fromFile, ReferenceEqualityComparer.Instance))
        {
            Count("success");
        }
    }

    private void Count(string result) => _reloads.Add(1, new KeyValuePair<string, object?>("result", result));
}
