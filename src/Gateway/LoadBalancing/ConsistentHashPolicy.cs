using System.Runtime.CompilerServices;
using Yarp.ReverseProxy.LoadBalancing;
using Yarp.ReverseProxy.Model;

namespace Gateway.LoadBalancing;

/// <summary>
/// YARP load-balancing policy <c>ConsistentHash</c>: requests with the same key (a chat room, from the cluster's
/// <c>HashKey</c> metadata, hashed after the cluster's <c>HashSeed</c> if it has one) go to the same destination, on
/// every replica of the gateway, as long as that destination is available. With the load bound on
/// (<c>HashBalanceFactor</c>), a key with live requests on an available destination follows them, and only a key
/// with none is placed by the bound. A request without the key goes to the least loaded destination (open tunnels
/// plus requests in flight), as the gateway's <c>LeastRequests</c> would send it.
/// </summary>
/// <remarks>
/// One instance serves every cluster; each cluster's parsed metadata and ring are kept beside YARP's own state for
/// it and rebuilt only when its configuration or its set of destinations changes, once per change however many
/// requests arrive at once. Picking allocates nothing without the bound; with it, one lease per keyed request.
/// </remarks>
internal sealed class ConsistentHashPolicy : ILoadBalancingPolicy
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
        if (entry.SettingsFor(cluster.Model) is not { } settings || !settings.Key.TryHash(context, settings.Start, out var hash))
        {
            return LeastRequests(availableDestinations);
        }
        if (settings.BalanceFactor <= 0)
        {
            // Without the bound the placement is the hash's alone: nothing to count.
            return entry.RingFor(cluster, _logger).Pick(hash, availableDestinations, 0) ?? LeastRequests(availableDestinations);
        }
        // The bound places new keys only: a room with members here stays where they are.
        var chosen = entry.Tunnels.Holder(hash, availableDestinations)
            ?? entry.RingFor(cluster, _logger).Pick(hash, availableDestinations, settings.BalanceFactor);
        if (chosen is null)
        {
            return LeastRequests(availableDestinations);
        }
        KeyLease.Hold(context, entry.Tunnels, hash, chosen);
        return chosen;
    }

    /// <summary>The gateway's LeastRequests: the least loaded, tunnels counted, the first of equals.</summary>
    private static DestinationState LeastRequests(IReadOnlyList<DestinationState> destinations) => LeastRequestsPolicy.Least(destinations);

    /// <summary>What the policy keeps per cluster; replaced wholesale, so readers on other threads see either version.</summary>
    private sealed class ClusterEntry
    {
        private readonly Lock _building = new();
        private volatile SettingsEntry? _settings;
        private volatile HashRing? _ring;

        /// <summary>Kept across reloads and ring rebuilds: the tunnels it counts outlive both.</summary>
        public KeyTunnels Tunnels { get; } = new();

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
            // One build per change: the requests that arrive meanwhile wait for it rather than each building their own.
            lock (_building)
            {
                // The list as it is now: a change that came while waiting is built for, not the one this caller saw.
                all = cluster.DestinationsState.AllDestinations;
                ring = _ring;
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
    }

    private sealed record SettingsEntry(ClusterModel Model, ConsistentHashSettings? Settings);
}
