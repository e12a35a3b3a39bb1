using System.Runtime.CompilerServices;
using Yarp.ReverseProxy.LoadBalancing;
using Yarp.ReverseProxy.Model;

namespace Gateway.LoadBalancing;

/// <summary>
/// YARP load-balancing policy <c>ConsistentHash</c>: requests with the same key (a chat room, from the cluster's
/// <c>HashKey</c> metadata) go to the same destination, on every replica of the gateway, as long as that destination
/// is available and not over the load bound (<c>HashBalanceFactor</c>). A request without the key goes to the
/// destination with the fewest requests in flight, as YARP's <c>LeastRequests</c> would send it.
/// </summary>
/// <remarks>
/// One instance serves every cluster; each cluster's parsed metadata and ring are kept beside YARP's own state for
/// it and rebuilt only when its configuration or its set of destinations changes. Picking allocates nothing.
/// </remarks>
public sealed class ConsistentHashPolicy : ILoadBalancingPolicy
{
    private readonly ConditionalWeakTable<ClusterState, ClusterEntry> _clusters = new();
    private readonly ILogger _logger;

    public ConsistentHashPolicy(ILogger<ConsistentHashPolicy> logger) => _logger = logger;

    public string Name => ConsistentHashSettings.PolicyName;

    public DestinationState? PickDestination(HttpContext context, ClusterState cluster, IReadOnlyList<DestinationState> availableDestinations)
    {
        if (availableDestinations.Count == 0)
        {
            return null;
        }
        var entry = _clusters.GetValue(cluster, static _ => new ClusterEntry());
        if (entry.SettingsFor(cluster.Model) is { } settings && settings.Key.TryHash(context, out var hash)
            && entry.RingFor(cluster, _logger).Pick(hash, availableDestinations, settings.BalanceFactor) is { } chosen)
        {
            return chosen;
        }
        return LeastRequests(availableDestinations);
    }

    /// <summary>YARP's LeastRequests: the fewest in-flight requests, the first of equals.</summary>
    internal static DestinationState LeastRequests(IReadOnlyList<DestinationState> destinations)
    {
        var least = destinations[0];
        var leastCount = least.ConcurrentRequestCount;
        for (var i = 1; i < destinations.Count; i++)
        {
            var count = destinations[i].ConcurrentRequestCount;
            if (count < leastCount)
            {
                least = destinations[i];
                leastCount = count;
            }
        }
        return least;
    }

    /// <summary>What the policy keeps per cluster; replaced wholesale, so readers on other threads see either version.</summary>
    private sealed class ClusterEntry
    {
        private volatile SettingsEntry? _settings;
        private volatile HashRing? _ring;

        public ConsistentHashSettings? SettingsFor(ClusterModel model)
        {
            var current = _settings;
            if (current is null || !ReferenceEquals(current.Model, model))
            {
                // Validated at load; a cluster whose metadata is somehow wrong balances by least requests.
                current = new SettingsEntry(model, ConsistentHashSettings.Read(model.Config, out _, out _));
                _settings = current;
            }
            return current.Settings;
        }

        public HashRing RingFor(ClusterState cluster, ILogger logger)
        {
            var all = cluster.DestinationsState.AllDestinations;
            var ring = _ring;
            if (ring is not null && ReferenceEquals(ring.Source, all))
            {
                return ring;
            }
            if (ring is not null && ring.HasSameMembers(all))
            {
                ring = ring.WithSource(all);
            }
            else
            {
                ring = HashRing.Build(all);
                Log.RingBuilt(logger, cluster.ClusterId, ring.DestinationCount, ring.PointCount);
            }
            _ring = ring;
            return ring;
        }
    }

    private sealed record SettingsEntry(ClusterModel Model, ConsistentHashSettings? Settings);
}
