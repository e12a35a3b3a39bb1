using System.Collections.Concurrent;
using Gateway.Configuration;
using Gateway.Relay;

namespace Gateway.Lifecycle;

/// <summary>
/// When a reload removes a destination (or its whole cluster), its open tunnels are closed with 1012 "service restart",
/// spread evenly over <c>Drain:Period</c>, so their clients reconnect to the destinations that remain instead of
/// relaying to a backend the operator has taken out. A cluster keeps them instead with
/// <c>"Metadata": { "OnDestinationRemoved": "Keep" }</c>. A reload that brings the destination back (the edit reverted)
/// stops its closes at once: the tunnels not yet closed stay open.
/// </summary>
internal sealed class RemovedDestinationDrain(GatewayOptions options, KeepAliveSweeper tunnels, TimeProvider time,
    ILogger<RemovedDestinationDrain> logger)
{
    public const string MetadataKey = "OnDestinationRemoved";
    public const string Keep = "Keep";

    /// <summary>The spreads under way, by destination, so that its return can stop its own.</summary>
    private readonly ConcurrentDictionary<(string Cluster, string Destination), CancellationTokenSource> _spreads = new();

    /// <summary>Starts closing the tunnels of the destinations that left; returns how many it will close.</summary>
    internal int Start(ConfigChangeSummary change)
    {
        foreach (var (cluster, destination) in change.DestinationsAdded)
        {
            if (_spreads.TryRemove((cluster.ToUpperInvariant(), destination.ToUpperInvariant()), out var spread))
            {
                spread.Cancel();
                Log.RemovedDestinationRestored(logger, cluster, destination);
            }
        }

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
        // One spread per destination, each over the whole period: together they close at the same even rate, and each
        // can be stopped alone.
        var doomed = tunnels.Snapshot()
            .GroupBy(t => (t.ClusterId.ToUpperInvariant(), t.DestinationId.ToUpperInvariant()))
            .Where(g => removed.Contains(g.Key))
            .ToList();
        var count = doomed.Sum(g => g.Count());
        if (count > 0)
        {
            Log.RemovedDestinationTunnels(logger, count, options.Drain.Period.TotalSeconds);
            foreach (var group in doomed)
            {
                var cancel = new CancellationTokenSource();
                if (_spreads.TryRemove(group.Key, out var earlier))
                {
                    earlier.Cancel();
                }
                _spreads[group.Key] = cancel;
                _ = SpreadAsync(group.Key, group.ToList(), cancel);
            }
        }
        return count;
    }

    private async Task SpreadAsync((string, string) key, List<RelayTunnel> doomed, CancellationTokenSource cancel)
    {
        try
        {
            await SpreadClose.RunAsync(doomed, options.Drain.Period, static tunnel => tunnel.Restart("destination removed"), time,
                cancel.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
        }
        catch (Exception ex)
        {
            Log.RemovedDestinationDrainFailed(logger, ex);
        }
        finally
        {
            _spreads.TryRemove(new KeyValuePair<(string, string), CancellationTokenSource>(key, cancel));
        }
    }
}
