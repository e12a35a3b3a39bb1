using System.Diagnostics.Metrics;
using Gateway.Lifecycle;
using Gateway.Metrics;
using Yarp.ReverseProxy.Configuration;

namespace Gateway.Configuration;

/// <summary>
/// Says in the log and in metrics what became of each edit of the configuration file: whether it parsed
/// (<see cref="ReloadableJsonConfigurationSource"/>), whether YARP applied it (<see cref="IConfigChangeListener"/>) and
/// what it changed, once; and hands the destinations it removed to <see cref="RemovedDestinationDrain"/>. An edit of the
/// <c>Gateway</c> section, which is read at startup only, is said to wait for a restart.
/// </summary>
public sealed class ConfigReloadReporter : IHostedService, IConfigChangeListener
{
    private readonly ReloadableJsonConfigurationSource _source;
    private readonly ILogger<ConfigReloadReporter> _logger;
    private readonly Counter<long> _reloads;
    private readonly IConfiguration _configuration;
    private readonly RemovedDestinationDrain _removedDestinations;
    private readonly DestinationDrains _drains;
    private readonly string _gatewaySectionAtStartup;
    private IProxyConfig[]? _applied;

    public ConfigReloadReporter(ReloadableJsonConfigurationSource source, GatewayMeter meter, IConfiguration configuration,
        RemovedDestinationDrain removedDestinations, DestinationDrains drains, ILogger<ConfigReloadReporter> logger)
    {
        _drains = drains;
        _source = source;
        _logger = logger;
        _configuration = configuration;
        _removedDestinations = removedDestinations;
        _gatewaySectionAtStartup = GatewaySection();
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

    /// <summary>The file parsed; YARP says next whether it applies. The Gateway section is compared with startup's.</summary>
    private void OnReloaded()
    {
        if (!string.Equals(GatewaySection(), _gatewaySectionAtStartup, StringComparison.Ordinal))
        {
            Log.GatewaySectionChanged(_logger, _source.FullPath);
        }
    }

    /// <summary>The Gateway section's values, flattened and ordered, to tell whether an edit touched it.</summary>
    private string GatewaySection() => string.Join('\n', _configuration.GetSection(GatewayOptions.SectionName).AsEnumerable()
        .OrderBy(pair => pair.Key, StringComparer.Ordinal).Select(pair => $"{pair.Key}={pair.Value}"));

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
            var change = ConfigChangeSummary.Between(previous, fromFile);
            Log.Reloaded(_logger, _source.FullPath, change.ToString());
            _removedDestinations.Start(change);
            _drains.OnAdded(change.DestinationsAdded);
        }
    }

    private void Count(string result) => _reloads.Add(1, new KeyValuePair<string, object?>("result", result));
}
