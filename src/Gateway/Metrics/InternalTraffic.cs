namespace Gateway.Metrics;

/// <summary>
/// The gateway's own traffic (the startup warm-up's route and cluster, which share one id). The features that count
/// or log tunnels and handshakes skip it at the source, so no exporter and no access log ever hears of it.
/// </summary>
internal sealed class InternalTraffic
{
    private volatile string? _routeId;

    /// <summary>Marks a route, and the cluster of the same id, as the gateway's own.</summary>
    public void Register(string routeId) => _routeId = routeId;

    /// <summary>Whether a route or cluster id is the gateway's own.</summary>
    public bool Is(string? routeOrClusterId) =>
        _routeId is { } own && string.Equals(own, routeOrClusterId, StringComparison.Ordinal);
}
