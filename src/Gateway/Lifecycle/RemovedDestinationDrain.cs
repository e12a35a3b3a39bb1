using Gateway.Configuration;
using Gateway.KeepAlive;
using Gateway.Relay;

namespace Gateway.Lifecycle;

/// <summary>
/// When a reload removes a destination (or its whole cluster), its open tunnels are closed with 1012 "service restart",
/// spread evenly over <c>Drain:Period</c>, so their clients reconnect to the destinations that remain instead of
/// relaying to a backend the operator has taken out. A cluster keeps them instead with
/// <c>"Metadata": { "OnDestinationRemoved": "Keep" }</c>.
/// </summary>
public sealed class RemovedDestinationDrain(GatewayOptions options, KeepAliveSweeper tunnels, TimeProvider time,
    ILogger<RemovedDestinationDrain> logger)
{
    public const string MetadataKey = "OnDestinationRemoved";
    public const string Keep = "Keep";

    /// <summary>Starts closing the tunnels of the destinations that left; returns how many it will close.</summary>
    internal int Start(ConfigChangeSummary change)
    {
        var removed = new HashSet<(string, string)>();
        foreach (var (cluster, destination) in change.DestinationsRemoved)
        {
            if (cluster.Metadata?.TryGetValue(MetadataKey, out var policy) == true && string.Equals(policy, Keep, StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }
            removed.Add((cluster.ClusterId.ToUpperInvariant(), destination.ToUpperInvariant()));
        }
        if (removed.Count == 0)
        {
            return 0;
        }
        var doomed = tunnels.Snapshot()
            .Where(t => removed.Contains((t.ClusterId.ToUpperInvariant(), t.DestinationId.ToUpperInvariant())))
            .ToList();
        if (doomed.Count > 0)
        {
            Log.RemovedDestinationTunnels(logger, doomed.Count, options.Drain.Period.TotalSeconds);
            _ = SpreadAsync(doomed);
        }
        return doomed.Count;
    }

    private async Task SpreadAsync(List<RelayTunnel> doomed)
    {
        try
        {
            await SpreadClose.RunAsync(doomed, options.Drain.Period, static tunnel => tunnel.Restart("destination removed"), time).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            Log.RemovedDestinationDrainFailed(logger, ex);
        }
    }
}
