using Yarp.ReverseProxy.LoadBalancing;
using Yarp.ReverseProxy.Model;

namespace Gateway.LoadBalancing;

/// <summary>
/// YARP's <c>LeastRequests</c>, under its name, counting what YARP's cannot see: the destination with the least
/// <see cref="DestinationLoad.Of"/> (open WebSocket tunnels plus plain requests in flight), the first of equals.
/// </summary>
/// <remarks>
/// YARP's own reads <see cref="DestinationState.ConcurrentRequestCount"/>, which only YARP's forwarder moves; the tunnels
/// pass the gateway's tunnel forwarder instead, so with YARP's this default policy would pile every WebSocket on the
/// first destination. Put in the place of YARP's by <see cref="TunnelBalancingExtensions.AddTunnelAwareBalancing"/>.
/// </remarks>
internal sealed class LeastRequestsPolicy : ILoadBalancingPolicy
{
    public string Name => LoadBalancingPolicies.LeastRequests;

    public DestinationState? PickDestination(HttpContext context, ClusterState cluster, IReadOnlyList<DestinationState> availableDestinations) =>
        availableDestinations.Count == 0 ? null : Least(availableDestinations);

    /// <summary>The least loaded of <paramref name="destinations"/> (not empty); the first of equals, as YARP's.</summary>
    internal static DestinationState Least(IReadOnlyList<DestinationState> destinations)
    {
        var least = destinations[0];
        var leastLoad = DestinationLoad.Of(least);
        for (var i = 1; i < destinations.Count; i++)
        {
            var load = DestinationLoad.Of(destinations[i]);
            if (load < leastLoad)
            {
                least = destinations[i];
                leastLoad = load;
            }
        }
        return least;
    }
}
