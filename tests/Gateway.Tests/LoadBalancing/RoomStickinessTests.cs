using Gateway.LoadBalancing;
using Gateway.Tests.Handshake;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;
using Yarp.ReverseProxy.Model;
using static Gateway.Tests.LoadBalancing.HashClusters;

namespace Gateway.Tests.LoadBalancing;

/// <summary>
/// With the load bound on, a room with live tunnels follows them and the bound only places new rooms (issue 22:
/// 30 of 30 two-member rooms split on a quiet gateway, 35 of 300 under skew); a finished tunnel lets its room go.
/// </summary>
public sealed class RoomStickinessTests(ITestOutputHelper output)
{
    [Fact]
    public async Task On_a_quiet_gateway_the_second_member_of_every_room_meets_the_first()
    {
        var cluster = Create(Names(3), balanceFactor: "1.25");
        var policy = Policy();
        var split = new List<string>();
        foreach (var room in Keys(30))
        {
            // One tunnel open: ⌈1.25 × 2 / 3⌉ = 1, so the room's own destination is at the bound for the second member.
            var first = Tunnel.Open(policy, cluster, room);
            var second = Tunnel.Open(policy, cluster, room);
            if (!ReferenceEquals(first.Destination, second.Destination))
            {
                split.Add(room);
            }
            await first.EndAsync();
            await second.EndAsync();
        }
        Assert.True(split.Count == 0, $"{split.Count} of 30 rooms split: {string.Join(", ", split)}");
    }

    [Fact]
    public void Under_skew_no_room_splits_and_the_bound_still_spreads_new_rooms()
    {
        var cluster = Create(Names(3), balanceFactor: "1.25");
        var policy = Policy();
        // One room of 200 members and 299 rooms of 2, arriving in a shuffled order.
        var members = Enumerable.Repeat("room-hot", 200).Concat(Keys(299).SelectMany(room => new[] { room, room })).ToArray();
        new Random(22).Shuffle(members);

        var tunnels = members.Select(room => Tunnel.Open(policy, cluster, room)).ToArray();

        var rooms = tunnels.GroupBy(t => t.Key).ToDictionary(g => g.Key, g => g.Select(t => t.Destination!.DestinationId).Distinct().ToArray());
        var split = rooms.Where(r => r.Value.Length > 1).Select(r => r.Key).ToArray();
        var loads = cluster.DestinationsState.AllDestinations.Select(d => $"{d.DestinationId} {d.ConcurrentRequestCount}");
        output.WriteLine($"{split.Length} of {rooms.Count} rooms split; loads {string.Join(", ", loads)}; the hot room on {rooms["room-hot"][0]}");
        Assert.Empty(split);
        // The bound placed the small rooms away from the hot room's destination: its load is the hot room and few others.
        var hotHome = cluster.Destinations[rooms["room-hot"][0]];
        var others = cluster.DestinationsState.AllDestinations.Where(d => d != hotHome).Select(d => d.ConcurrentRequestCount).ToArray();
        Assert.All(others, load => Assert.InRange(load, 150, 400));
    }

    [Fact]
    public async Task A_room_whose_tunnels_all_ended_is_placed_by_the_bound_again()
    {
        var cluster = Create(Names(3), balanceFactor: "1.25");
        var policy = Policy();
        var first = Tunnel.Open(policy, cluster, "red");
        var home = first.Destination!;
        // Other traffic piles onto red's destination (clients without the key, say): far over the bound.
        home.ConcurrentRequestCount += 30;

        var second = Tunnel.Open(policy, cluster, "red");
        Assert.Same(home, second.Destination);

        await first.EndAsync();
        var third = Tunnel.Open(policy, cluster, "red");
        Assert.Same(home, third.Destination); // the second is still there

        await second.EndAsync();
        await third.EndAsync();
        // Nobody left in the room here: it is a new room, and its destination is over the bound.
        var fourth = Tunnel.Open(policy, cluster, "red");
        Assert.NotSame(home, fourth.Destination);
        var fifth = Tunnel.Open(policy, cluster, "red");
        Assert.Same(fourth.Destination, fifth.Destination);
    }

    [Fact]
    public void A_connect_retry_moves_the_rooms_count_to_the_destination_that_was_tried_next()
    {
        var cluster = Create(Names(3), balanceFactor: "1.25");
        var all = cluster.DestinationsState.AllDestinations;
        var policy = Policy();
        var member = new Tunnel("blue");
        var tried = policy.PickDestination(member.Context, cluster, all)!;
        // The connect failed: the retry picks again on the same request without the destination it tried.
        var retried = policy.PickDestination(member.Context, cluster, all.Where(d => d != tried).ToArray())!;
        Assert.NotSame(tried, retried);
        retried.ConcurrentRequestCount++;

        // Two destinations are loaded alike; the room's count is on the one it reached, and the next member follows.
        tried.ConcurrentRequestCount = 5;
        retried.ConcurrentRequestCount = 6;
        Assert.Same(retried, Tunnel.Open(policy, cluster, "blue").Destination);
    }

    [Fact]
    public void Concurrent_requests_after_a_change_build_the_ring_once()
    {
        var logs = new CapturingLoggerProvider();
        using var factory = LoggerFactory.Create(builder => builder.AddProvider(logs));
        var policy = new ConsistentHashPolicy(factory.CreateLogger<ConsistentHashPolicy>());
        // Many destinations, so that a build takes long enough for the callers to overlap.
        var cluster = Create(Names(200), balanceFactor: "0");
        var all = cluster.DestinationsState.AllDestinations.ToArray();
        const int Callers = 8;
        const int Changes = 10;
        int Builds() => logs.Lines.Count(line => line.Id.Id == 800);

        for (var change = 1; change <= Changes; change++)
        {
            // A destination joins (or leaves, every other change): a new set, so a new ring.
            var set = change % 2 == 1 ? all.Append(new DestinationState($"extra-{change}")).ToArray() : all;
            cluster.DestinationsState = new ClusterDestinationsState(set, set);
            using var start = new Barrier(Callers);
            var picked = new DestinationState?[Callers];
            var callers = Enumerable.Range(0, Callers).Select(i => new Thread(() =>
            {
                start.SignalAndWait();
                picked[i] = policy.PickDestination(WithKey("room-1"), cluster, set);
            })).ToArray();
            foreach (var caller in callers)
            {
                caller.Start();
            }
            foreach (var caller in callers)
            {
                Assert.True(caller.Join(TimeSpan.FromSeconds(30)));
            }
            Assert.Single(picked.Distinct());
            Assert.True(Builds() == change, $"after change {change}: {Builds()} builds by {Callers} concurrent callers");
        }
        output.WriteLine($"{Changes} changes, {Builds()} builds");
    }
}
