using Gateway.LoadBalancing;
using Microsoft.AspNetCore.Http;
using Xunit.Abstractions;
using Yarp.ReverseProxy.LoadBalancing;
using Yarp.ReverseProxy.Model;
using static Gateway.Tests.LoadBalancing.LoadedDestinations;

namespace Gateway.Tests.LoadBalancing;

/// <summary>
/// The gateway's <c>PowerOfTwoChoices</c> compares open tunnels too. It draws at random, so each property is checked over
/// many picks; with two destinations both are always drawn, so the answer is certain.
/// </summary>
public sealed class PowerOfTwoChoicesPolicyTests(ITestOutputHelper output)
{
    private const int Picks = 2_000;

    private static readonly PowerOfTwoChoicesPolicy Policy = new();

    [Fact]
    public void Of_two_always_takes_the_one_with_fewer_tunnels()
    {
        var destinations = Create(2);
        destinations[0].WithTunnels(1);
        var cluster = Cluster(destinations, Policy.Name);

        // YARP's own would see 0 and 0 and take whichever it drew first: about half each.
        Assert.Equal(Picks, Count(Pick(cluster, destinations), destinations[1]));
    }

    [Fact]
    public void Of_two_always_takes_the_one_with_fewer_requests()
    {
        var destinations = Create(2);
        destinations[1].WithRequests(2);
        destinations[0].WithRequests(1);

        Assert.Equal(Picks, Count(Pick(Cluster(destinations, Policy.Name), destinations), destinations[0]));
    }

    [Fact]
    public void Of_two_adds_tunnels_and_requests()
    {
        var destinations = Create(2);
        destinations[0].WithTunnels(3).WithRequests(1); // 4
        destinations[1].WithRequests(2);                 // 2: more requests, less load in all

        Assert.Equal(Picks, Count(Pick(Cluster(destinations, Policy.Name), destinations), destinations[1]));
    }

    [Fact]
    public void The_two_drawn_are_distinct_so_the_most_loaded_of_three_is_never_taken()
    {
        var destinations = Create(3);
        destinations[0].WithTunnels(1);
        destinations[1].WithTunnels(2);
        var cluster = Cluster(destinations, Policy.Name);

        var chosen = Pick(cluster, destinations);

        var counts = destinations.Select(d => Count(chosen, d)).ToArray();
        output.WriteLine($"{Picks} picks over loads 1, 2, 0: {string.Join(", ", counts)}");
        // Drawing one twice would sometimes take the busiest alone.
        Assert.Equal(0, counts[1]);
        // The idle one wins both pairs it is in (2 of 3), the one with a tunnel the third pair.
        Assert.InRange(counts[2] / (double)Picks, 0.6, 0.73);
        Assert.InRange(counts[0] / (double)Picks, 0.27, 0.4);
    }

    [Fact]
    public void Equal_loads_are_shared_evenly()
    {
        var destinations = Create(4);
        foreach (var destination in destinations)
        {
            destination.WithTunnels(1);
        }

        var chosen = Pick(Cluster(destinations, Policy.Name), destinations);

        var counts = destinations.Select(d => Count(chosen, d)).ToArray();
        output.WriteLine($"{Picks} picks over four equal loads: {string.Join(", ", counts)}");
        Assert.All(counts, count => Assert.InRange(count / (double)Picks, 0.18, 0.32));
    }

    [Fact]
    public void One_destination_is_the_answer_and_none_is_none()
    {
        var destinations = Create(1);
        destinations[0].WithTunnels(3);
        var cluster = Cluster(destinations, Policy.Name);

        Assert.Same(destinations[0], Policy.PickDestination(new DefaultHttpContext(), cluster, destinations));
        Assert.Null(Policy.PickDestination(new DefaultHttpContext(), cluster, []));
    }

    [Fact]
    public void Answers_to_YARPs_name()
    {
        Assert.Equal(LoadBalancingPolicies.PowerOfTwoChoices, Policy.Name);
    }

    private static DestinationState[] Pick(ClusterState cluster, IReadOnlyList<DestinationState> available)
    {
        var context = new DefaultHttpContext();
        return Enumerable.Range(0, Picks).Select(_ => Policy.PickDestination(context, cluster, available)!).ToArray();
    }

    /// <summary>How often <paramref name="destination"/> was chosen (a destination is a list of itself: by reference).</summary>
    private static int Count(DestinationState[] chosen, DestinationState destination) => chosen.Count(d => ReferenceEquals(d, destination));
}
