using System.Collections.Concurrent;
using Gateway.Configuration;
using Gateway.LoadBalancing;
using Gateway.Relay;
using Yarp.ReverseProxy.Model;

namespace Gateway.Lifecycle;

/// <summary>
/// Destinations an operator is draining (<c>POST /clusters/{cluster}/destinations/{destination}/drain</c>): no new
/// handshake goes to them, and their open tunnels are closed with 1012 "service restart" spread over a period, so their
/// clients reconnect to the other destinations. A drain ends with <c>DELETE</c> on the same path, or when a reload
/// adds the destination anew; its closes stop at once then (the tunnels not yet closed stay open).
/// </summary>
/// <remarks>
/// YARP's state comes in from the caller rather than through the constructor: YARP's configuration manager holds the
/// reload reporter, which holds these drains, so injecting <see cref="Yarp.ReverseProxy.IProxyStateLookup"/> here
/// would close a cycle in the container.
/// </remarks>
internal sealed class DestinationDrains(KeepAliveSweeper tunnels, GatewayOptions options, TimeProvider time, ILogger<DestinationDrains> logger)
{
    private readonly ConcurrentDictionary<string, DestinationDrain> _drains = new(StringComparer.OrdinalIgnoreCase);
    private volatile int _count;

    /// <summary>True when no destination is drained: the proxy pipeline's check is one field read.</summary>
    public bool IsEmpty => _count == 0;

    /// <summary>Starts a drain of a destination of <paramref name="cluster"/> (or returns the one under way).</summary>
    internal DestinationDrain Start(ClusterState cluster, string destination, TimeSpan? period)
    {
        var drain = new DestinationDrain(cluster.ClusterId, destination, time.GetUtcNow(), period ?? options.Drain.Period);
        var current = _drains.GetOrAdd(Key(cluster.ClusterId, destination), drain);
        _count = _drains.Count;
        if (!ReferenceEquals(current, drain))
        {
            return current;
        }
        // The list is what the drain closes; the count is the destination's own, which may also hold a handshake
        // still on its way to its 101 (chosen before the drain began, so not turned away).
        var open = Of(cluster.ClusterId, destination);
        drain.TunnelsAtStart = TunnelCount(cluster, destination);
        Log.DestinationDrainStarted(logger, cluster.ClusterId, destination, open.Count, drain.Period.TotalSeconds);
        _ = CloseAsync(open, drain);
        return drain;
    }

    internal DestinationDrain? Get(string cluster, string destination) => _drains.GetValueOrDefault(Key(cluster, destination));

    /// <summary>Ends a drain: the destination takes new handshakes again.</summary>
    internal bool Stop(string cluster, string destination)
    {
        var stopped = _drains.TryRemove(Key(cluster, destination), out var drain);
        _count = _drains.Count;
        if (stopped)
        {
            // The spread's closes stop before the next one: an operator who cancels a drain keeps the tunnels still open.
            drain!.Cancel();
            Log.DestinationDrainEnded(logger, cluster, destination);
        }
        return stopped;
    }

    /// <summary>A reload added these destinations anew: drains of the same names end.</summary>
    internal void OnAdded(IEnumerable<(string Cluster, string Destination)> added)
    {
        foreach (var (cluster, destination) in added)
        {
            Stop(cluster, destination);
        }
    }

    /// <summary>
    /// The tunnels open on one destination, as load balancing counts them (<see cref="DestinationLoad.Tunnels"/>, a
    /// handshake included from the moment it chose the destination): the number the admin API shows.
    /// </summary>
    internal int TunnelCount(Yarp.ReverseProxy.IProxyStateLookup proxyState, string cluster, string destination) =>
        proxyState.TryGetCluster(cluster, out var state) ? TunnelCount(state, destination) : Of(cluster, destination).Count;

    /// <inheritdoc cref="TunnelCount(Yarp.ReverseProxy.IProxyStateLookup, string, string)"/>
    internal int TunnelCount(ClusterState cluster, string destination) =>
        cluster.Destinations.TryGetValue(destination, out var current)
            ? DestinationLoad.Tunnels(current)
            // A reload removed the destination (or its cluster): its count stays on the DestinationState its tunnels
            // hold, which YARP no longer hands out, so the keepalive sweeper's list of its tunnels says it instead.
            : Of(cluster.ClusterId, destination).Count;

    /// <summary>The open tunnels to one destination: the ones a drain closes.</summary>
    internal List<RelayTunnel> Of(string cluster, string destination) => tunnels.Snapshot()
        .Where(t => string.Equals(t.ClusterId, cluster, StringComparison.OrdinalIgnoreCase)
            && string.Equals(t.DestinationId, destination, StringComparison.OrdinalIgnoreCase))
        .ToList();

    /// <summary>The destinations a handshake may go to: those of <paramref name="available"/> not drained.</summary>
    internal IReadOnlyList<DestinationState> Filter(string cluster, IReadOnlyList<DestinationState> available)
    {
        List<DestinationState>? kept = null;
        for (var i = 0; i < available.Count; i++)
        {
            var drained = _drains.ContainsKey(Key(cluster, available[i].DestinationId));
            if (drained && kept is null)
            {
                kept = new List<DestinationState>(available.Count);
                for (var j = 0; j < i; j++)
                {
                    kept.Add(available[j]);
                }
            }
            else if (!drained)
            {
                kept?.Add(available[i]);
            }
        }
        return kept ?? available;
    }

    private async Task CloseAsync(List<RelayTunnel> open, DestinationDrain drain)
    {
        try
        {
            await SpreadClose.RunAsync(open, drain.Period, static tunnel => tunnel.CloseByOperator(1012, "destination draining"), time,
                drain.Cancelled).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (drain.Cancelled.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            Log.RemovedDestinationDrainFailed(logger, ex);
        }
    }

    private static string Key(string cluster, string destination) => cluster + "\0" + destination;
}

/// <summary>One destination's drain, as <c>GET .../drain</c> shows it.</summary>
internal sealed class DestinationDrain(string cluster, string destination, DateTimeOffset startedAt, TimeSpan period)
{
    private readonly CancellationTokenSource _cancel = new();

    public string Cluster { get; } = cluster;
    public string Destination { get; } = destination;
    public DateTimeOffset StartedAt { get; } = startedAt;
    public TimeSpan Period { get; } = period;
    public int TunnelsAtStart { get; set; }

    /// <summary>Fires when the drain ends (<c>DELETE</c>, or a reload adds the destination anew).</summary>
    public CancellationToken Cancelled => _cancel.Token;

    public void Cancel() => _cancel.Cancel();
}

/// <summary>Keeps handshakes away from drained destinations; before affinity, whose failure policy then picks another.</summary>
internal sealed class DestinationDrainMiddleware(RequestDelegate next, DestinationDrains drains)
{
    public Task InvokeAsync(HttpContext context)
    {
        if (!drains.IsEmpty)
        {
            var proxy = context.GetReverseProxyFeature();
            proxy.AvailableDestinations = drains.Filter(proxy.Cluster.Config.ClusterId, proxy.AvailableDestinations);
        }
        return next(context);
    }
}
