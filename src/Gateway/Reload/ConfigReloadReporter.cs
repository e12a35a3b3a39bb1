using Gateway.Configuration;
using System.Diagnostics.Metrics;
using Gateway.Handshake;
using Gateway.Lifecycle;
using Gateway.Policies;
using Gateway.Metrics;
using Yarp.ReverseProxy.Configuration;

namespace Gateway.Reload;

/// <summary>
/// Says in the log and in metrics what became of each edit of the configuration file: whether it parsed
/// (<see cref="ReloadableJsonConfigurationSource"/>) and passed <see cref="EditValidation"/>, both sections at once (an
/// edit that fails anywhere applies nowhere, with one log line), whether YARP applied it (<see cref="IConfigChangeListener"/>) and
/// what it changed, once; and hands the destinations it removed to <see cref="RemovedDestinationDrain"/>. An edit of the
/// <c>Gateway</c> section, which is read at startup only, is said to wait for a restart.
/// </summary>
internal sealed class ConfigReloadReporter : IHostedService, IConfigChangeListener
{
    private readonly ReloadableJsonConfigurationSource _source;
    private readonly ILogger<ConfigReloadReporter> _logger;
    private readonly Counter<long> _reloads;
    private readonly IConfiguration _configuration;
    private readonly RemovedDestinationDrain _removedDestinations;
    private readonly DestinationDrains _drains;
    private readonly WebSocketPolicies _policies;
    private readonly TrustedForwarderSet _forwarders;
    private readonly Dictionary<string, string> _running;
    private readonly EditValidation _validation;
    private IProxyConfig[]? _applied;

    public ConfigReloadReporter(ReloadableJsonConfigurationSource source, GatewayMeter meter, IConfiguration configuration,
        RemovedDestinationDrain removedDestinations, DestinationDrains drains, WebSocketPolicies policies, TrustedForwarderSet forwarders,
        IConfigValidator validator, IEnumerable<IProxyConfigFilter> filters, ILogger<ConfigReloadReporter> logger)
    {
        _validation = new EditValidation(source, configuration, validator, filters);
        _policies = policies;
        _forwarders = forwarders;
        _drains = drains;
        _source = source;
        _logger = logger;
        _configuration = configuration;
        _removedDestinations = removedDestinations;
        _running = GatewaySections();
        _reloads = meter.Meter.CreateCounter<long>("gateway.config.reloads", "{reload}",
            "Edits of the configuration file applied, by result (success; failure: the running configuration stayed) and section (reverse_proxy: routes and clusters; gateway: policies and trusted forwarders)");
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _source.Validator = _validation.Validate;
        _source.Applying += OnApplying;
        _source.ReloadFailed += OnReloadFailed;
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        _source.Validator = null;
        _source.Applying -= OnApplying;
        _source.ReloadFailed -= OnReloadFailed;
        return Task.CompletedTask;
    }

    /// <summary>
    /// The file parsed. Of the <c>Gateway</c> section, what changed and can change while running applies now (after the
    /// whole section validated as at startup): the WebSocket policies and the trusted forwarders. The rest is said to
    /// wait for a restart. YARP then reads the routes and clusters and says whether they apply.
    /// </summary>
    private void OnApplying()
    {
        var now = GatewaySections();
        var changed = now.Keys.Union(_running.Keys, StringComparer.OrdinalIgnoreCase)
            .Where(key => !string.Equals(now.GetValueOrDefault(key), _running.GetValueOrDefault(key), StringComparison.Ordinal))
            .Order(StringComparer.OrdinalIgnoreCase)
            .ToList();
        if (changed.Count == 0)
        {
            return;
        }
        GatewayOptions fresh;
        try
        {
            fresh = GatewayConfiguration.Load(_configuration, Path.GetDirectoryName(_source.FullPath)!);
        }
        catch (GatewayConfigurationException ex)
        {
            Log.GatewaySectionRefused(_logger, _source.FullPath, ex.Message);
            Count("failure", GatewayPart);
            return;
        }
        var applied = new List<string>();
        var restart = new List<string>();
        foreach (var key in changed)
        {
            if (string.Equals(key, nameof(GatewayOptions.WebSocketPolicies), StringComparison.OrdinalIgnoreCase))
            {
                _policies.Reload(fresh.WebSocketPolicies);
            }
            else if (string.Equals(key, nameof(GatewayOptions.TrustedForwarders), StringComparison.OrdinalIgnoreCase))
            {
                _forwarders.Apply(fresh.TrustedForwarders);
            }
            else
            {
                restart.Add(key);
                continue;
            }
            applied.Add(key);
            _running[key] = now.GetValueOrDefault(key) ?? string.Empty;
        }
        Log.GatewaySectionChanged(_logger, _source.FullPath, applied.Count == 0 ? "nothing" : string.Join(", ", applied),
            restart.Count == 0 ? "nothing" : string.Join(", ", restart));
        if (applied.Count > 0)
        {
            Count("success", GatewayPart);
        }
    }

    /// <summary>The Gateway section's values by top-level key, each flattened and ordered, to tell what an edit touched.</summary>
    private Dictionary<string, string> GatewaySections() => _configuration.GetSection(GatewayOptions.SectionName).GetChildren()
        .ToDictionary(child => child.Key, child => string.Join('\n', child.AsEnumerable()
            .OrderBy(pair => pair.Key, StringComparer.Ordinal).Select(pair => $"{pair.Key}={pair.Value}")), StringComparer.OrdinalIgnoreCase);

    private void OnReloadFailed(Exception ex)
    {
        Log.ReloadFailed(_logger, _source.FullPath, ex.Message);
        Count("failure", ex.Message.StartsWith(GatewayOptions.SectionName + ":", StringComparison.OrdinalIgnoreCase) ? GatewayPart : ProxyPart);
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

    /// <summary>Which part of the file a reload applied: YARP's routes and clusters, or the Gateway section's reloadable parts.</summary>
    private const string ProxyPart = "reverse_proxy";
    private const string GatewayPart = "gateway";

    private void Count(string result, string part = ProxyPart) =>
        _reloads.Add(1, new KeyValuePair<string, object?>("result", result), new KeyValuePair<string, object?>("section", part));
}
