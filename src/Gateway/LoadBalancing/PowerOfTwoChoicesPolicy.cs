using Yarp.ReverseProxy.LoadBalancing;
using Yarp.ReverseProxy.Model;

namespace Gateway.LoadBalancing;

/// <summary>
/// YARP's <c>PowerOfTwoChoices</c> (YARP's default policy), under its name: two distinct destinations at random, and
/// the less loaded of them by <see cref="DestinationLoad.Of"/> (open WebSocket tunnels plus plain requests in flight),
/// the first drawn of equals.
/// </summary>
/// <remarks>
/// YARP's own compares <see cref="DestinationState.ConcurrentRequestCount"/>, which no longer counts tunnels (they pass
/// the gateway's tunnel forwarder), so it would balance WebSockets no better than <c>Random</c>. Put in the place of
/// YARP's by <see cref="TunnelBalancingExtensions.AddTunnelAwareBalancing"/>.
/// </remarks>
internal sealed class PowerOfTwoChoicesPolicy : ILoadBalancingPolicy
{
    public string Name => LoadBalancingPolicies.PowerOfTwoChoices;

    public DestinationState? PickDestination(HttpContext context, ClusterState cluster, IReadOnlyList<DestinationState> availableDestinations)
    {
        var count = availableDestinations.Count;
        if (count <= 1)
        {
            return count == 0 ? null : availableDestinations[0];
        }
        // Two distinct indexes, uniformly, without YARP's redraw loop: the second is drawn from the other count - 1.
        var firstIndex = Random.Shared.Next(count);
        var secondIndex = Random.Shared.Next(count - 1);
        if (secondIndex >= firstIndex)
        {
            secondIndex++;
        }
        var first = availableDestinations[firstIndex];
        var second = availableDestinations[secondIndex];
        return DestinationLoad.Of(first) <= DestinationLoad.Of(second) ? first : second;
    }
}
