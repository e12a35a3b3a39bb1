using Gateway.LoadBalancing;
using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.LoadBalancing;
using static Gateway.Tests.LoadBalancing.LoadedDestinations;

namespace Gateway.Tests.LoadBalancing;

/// <summary>The gateway's <c>LeastRequests</c> sees open tunnels, which YARP's <c>ConcurrentRequestCount</c> no longer counts.</summary>
public sealed class LeastRequestsPolicyTests
{
    private static readonly LeastRequestsPolicy Policy = new();

    [Fact]
    public void Picks_the_destination_without_tunnels_over_two_with()
    {
        var destinations = Create(3);
        destinations[0].WithTunnels(2);
        destinations[1].WithTunnels(1);

        var chosen = Policy.PickDestination(new DefaultHttpContext(), Cluster(destinations, Policy.Name), destinations);

        // YARP's own would see 0, 0, 0 and take the first.
        Assert.Same(destinations[2], chosen);
    }

    [Fact]
    public void Still_counts_plain_requests_in_flight()
    {
        var destinations = Create(3);
        destinations[0].WithRequests(3);
        destinations[1].WithRequests(1);
        destinations[2].WithRequests(2);

        Assert.Same(destinations[1], Policy.PickDestination(new DefaultHttpContext(), Cluster(destinations, Policy.Name), destinations));
    }

    [Fact]
    public void Adds_tunnels_and_requests()
    {
        var destinations = Create(3);
        destinations[0].WithTunnels(2).WithRequests(1); // 3
        destinations[1].WithTunnels(1).WithRequests(3); // 4
        destinations[2].WithRequests(2);                 // 2, though it has the most requests but one

        Assert.Same(destinations[2], Policy.PickDestination(new DefaultHttpContext(), Cluster(destinations, Policy.Name), destinations));
    }

    [Fact]
    public void A_closed_tunnel_stops_counting()
    {
        var destinations = Create(2);
        destinations[0].WithTunnels(1);
        destinations[1].WithTunnels(1);
        DestinationLoad.TunnelClosed(destinations[1]);

        Assert.Same(destinations[1], Policy.PickDestination(new DefaultHttpContext(), Cluster(destinations, Policy.Name), destinations));
    }

    [Fact]
    public void Takes_the_first_of_equals_as_YARPs_does()
    {
        var destinations = Create(3);
        destinations[0].WithTunnels(1);
        destinations[1].WithRequests(0);
        destinations[2].WithRequests(0);

        Assert.Same(destinations[1], Policy.PickDestination(new DefaultHttpContext(), Cluster(destinations, Policy.Name), destinations));
    }

    [Fact]
    public void Picks_only_among_the_available_and_none_of_none()
    {
        var destinations = Create(3);
        destinations[0].WithTunnels(5);
        var cluster = Cluster(destinations, Policy.Name);

        // The idle ones are unhealthy or drained: YARP passes only the loaded one.
        Assert.Same(destinations[0], Policy.PickDestination(new DefaultHttpContext(), cluster, [destinations[0]]));
        Assert.Null(Policy.PickDestination(new DefaultHttpContext(), cluster, []));
    }

    [Fact]
    public void Answers_to_YARPs_name()
    {
        Assert.Equal(LoadBalancingPolicies.LeastRequests, Policy.Name);
    }
}
