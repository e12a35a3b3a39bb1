using System.Globalization;
using Gateway.LoadBalancing;
using Gateway.Tests.Handshake;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;
using Yarp.ReverseProxy.Model;
using static Gateway.Tests.LoadBalancing.HashClusters;

namespace Gateway.Tests.LoadBalancing;

/// <summary>The ring's spread, what moves when destinations come and go, the load bound, and the fallback, over 10,000 keys.</summary>
public sealed class ConsistentHashPolicyTests(ITestOutputHelper output)
{
    private const int KeyCount = 10_000;

    [Fact]
    public void Keys_spread_evenly_over_five_destinations()
    {
        var assigned = Assign(Policy(), Create(Names(5)), Keys(KeyCount));

        var counts = assigned.GroupBy(d => d).ToDictionary(g => g.Key, g => g.Count());
        var mean = KeyCount / 5.0;
        var maxOverMean = counts.Values.Max() / mean;
        var minOverMean = counts.Values.Min() / mean;
        output.WriteLine($"keys per destination: {string.Join(", ", counts.OrderBy(c => c.Key).Select(c => $"{c.Key} {c.Value}"))}; max/mean {maxOverMean:0.000}, min/mean {minOverMean:0.000}");
        Assert.Equal(5, counts.Count);
        Assert.InRange(maxOverMean, 1.0, 1.25);
        Assert.InRange(minOverMean, 0.75, 1.0);
    }

    [Fact]
    public void When_a_destination_leaves_only_its_keys_move_about_one_in_N()
    {
        var keys = Keys(KeyCount);
        var five = Create(Names(5));
        var policy = Policy();
        var before = Assign(policy, five, keys);

        // Unhealthy, or already tried by the connect retry: YARP leaves it out of the available destinations.
        var available = five.DestinationsState.AllDestinations.Where(d => d.DestinationId != "chat-3").ToArray();
        var unavailable = Assign(policy, five, keys, available);
        // Taken out of the configuration: a ring of four, on another gateway replica that never saw five.
        var removed = Assign(Policy(), Create(Names(5).Where(n => n != "chat-3")), keys);

        Assert.Equal(removed, unavailable);
        var moved = Enumerable.Range(0, KeyCount).Where(i => before[i] != removed[i]).ToArray();
        var fraction = moved.Length / (double)KeyCount;
        output.WriteLine($"5 -> 4 destinations: {fraction:P2} of keys moved (1/N = {1 / 5.0:P0}), to {string.Join(", ", moved.GroupBy(i => removed[i]).OrderBy(g => g.Key).Select(g => $"{g.Key} {g.Count()}"))}");
        Assert.All(moved, i => Assert.Equal("chat-3", before[i]));
        Assert.Equal(before.Count(d => d == "chat-3"), moved.Length);
        Assert.InRange(fraction, 0.5 / 5, 1.5 / 5);
        // Its keys are shared out, not handed to one neighbour.
        Assert.Equal(4, moved.Select(i => removed[i]).Distinct().Count());
    }

    [Fact]
    public void When_a_destination_joins_about_one_in_N_keys_move_all_to_it()
    {
        var keys = Keys(KeyCount);
        var before = Assign(Policy(), Create(Names(5)), keys);
        var after = Assign(Policy(), Create(Names(6)), keys);

        var moved = Enumerable.Range(0, KeyCount).Where(i => before[i] != after[i]).ToArray();
        var fraction = moved.Length / (double)KeyCount;
        output.WriteLine($"5 -> 6 destinations: {fraction:P2} of keys moved (1/N = {1 / 6.0:P1}), taken from {string.Join(", ", moved.GroupBy(i => before[i]).OrderBy(g => g.Key).Select(g => $"{g.Key} {g.Count()}"))}");
        Assert.All(moved, i => Assert.Equal("chat-6", after[i]));
        Assert.InRange(fraction, 0.5 / 6, 1.5 / 6);
        Assert.Equal(5, moved.Select(i => before[i]).Distinct().Count());
    }

    [Fact]
    public void Replicas_agree_whatever_order_their_configuration_lists_destinations_in()
    {
        var keys = Keys(KeyCount);
        var one = Assign(Policy(), Create(Names(5)), keys);
        var other = Assign(Policy(), Create(Names(5).Reverse()), keys);
        Assert.Equal(one, other);
    }

    [Theory]
    [InlineData("1.25")]
    [InlineData("1.5")]
    [InlineData("2")]
    public void Under_skewed_load_new_keys_respect_the_bound_and_open_keys_stay_whole(string factorText)
    {
        var factor = double.Parse(factorText, CultureInfo.InvariantCulture);
        var cluster = Create(Names(5), balanceFactor: factorText);
        var destinations = cluster.DestinationsState.AllDestinations;
        int[] initial = [40, 0, 6, 2, 0];
        for (var i = 0; i < destinations.Count; i++)
        {
            destinations[i].ConcurrentRequestCount = initial[i];
        }
        const string hot = "room-hot";

        // Half the requests are for one room; every request stays open, as a chat member's tunnel does.
        var policy = Policy();
        var random = new Random(13);
        var open = new Dictionary<string, DestinationState>();
        int placed = 0, followed = 0;
        for (var step = 0; step < 2_000; step++)
        {
            var key = random.Next(2) == 0 ? hot : $"room-{random.Next(1_000)}";
            var total = destinations.Sum(d => d.ConcurrentRequestCount);
            var bound = Math.Ceiling(factor * (total + 1) / destinations.Count);

            var tunnel = Tunnel.Open(policy, cluster, key);

            if (open.TryGetValue(key, out var home))
            {
                // A room with members here stays whole, bound or not.
                Assert.True(ReferenceEquals(home, tunnel.Destination), $"step {step}: {key} has members on {home.DestinationId}, the new one went to {tunnel.Destination!.DestinationId}");
                followed++;
            }
            else
            {
                // A new room is placed under the bound.
                Assert.True(tunnel.Destination!.ConcurrentRequestCount - 1 < bound,
                    $"step {step}: {tunnel.Destination.DestinationId} had {tunnel.Destination.ConcurrentRequestCount - 1} requests, the bound is {bound} ({factor} x ({total} + 1) / 5)");
                open[key] = tunnel.Destination;
                placed++;
            }
        }

        var loads = destinations.Select(d => d.ConcurrentRequestCount).ToArray();
        output.WriteLine($"factor {factor}: loads {string.Join(", ", loads)}; {placed} rooms placed, {followed} members followed their room; the hot room on {open[hot].DestinationId}");
        // The new rooms went everywhere, not only to the hash's choices of the hot room's neighbours.
        Assert.Equal(5, open.Values.Distinct().Count());
    }

    [Fact]
    public void With_factor_zero_a_key_stays_home_however_loaded()
    {
        var cluster = Create(Names(5), balanceFactor: "0");
        var destinations = cluster.DestinationsState.AllDestinations;
        var policy = Policy();
        var context = WithKey("room-hot");
        var home = policy.PickDestination(context, cluster, destinations)!;
        for (var i = 0; i < 500; i++)
        {
            Assert.Same(home, policy.PickDestination(context, cluster, destinations));
            home.ConcurrentRequestCount++;
        }
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    public void A_request_without_the_key_goes_to_the_destination_with_fewest_requests(string? key)
    {
        var cluster = Create(Names(5));
        var destinations = cluster.DestinationsState.AllDestinations;
        int[] loads = [3, 1, 2, 1, 5];
        for (var i = 0; i < destinations.Count; i++)
        {
            destinations[i].ConcurrentRequestCount = loads[i];
        }
        var context = new DefaultHttpContext();
        if (key is not null)
        {
            context.Request.Headers[KeyHeader] = key;
        }

        Assert.Equal("chat-2", Policy().PickDestination(context, cluster, destinations)!.DestinationId);
    }

    [Fact]
    public void The_ring_is_built_once_per_set_of_destinations_not_per_request_health_change_or_retry()
    {
        var logs = new CapturingLoggerProvider();
        using var factory = LoggerFactory.Create(builder => builder.AddProvider(logs));
        var policy = new ConsistentHashPolicy(factory.CreateLogger<ConsistentHashPolicy>());
        var cluster = Create(Names(5));
        var all = cluster.DestinationsState.AllDestinations;
        int Builds() => logs.Lines.Count(line => line.Id.Id == 800);

        foreach (var key in Keys(200))
        {
            policy.PickDestination(WithKey(key), cluster, all);
            // The connect retry's second attempt: one destination fewer.
            policy.PickDestination(WithKey(key), cluster, all.Where(d => d.DestinationId != "chat-2").ToArray());
        }
        // A health change: YARP keeps the list of all destinations and makes a new available list.
        cluster.DestinationsState = new ClusterDestinationsState(all, all.Skip(1).ToArray());
        policy.PickDestination(WithKey("room-1"), cluster, cluster.DestinationsState.AvailableDestinations);
        // A reload that leaves the destinations as they were: a new list of the same ones.
        cluster.DestinationsState = new ClusterDestinationsState(all.ToList(), all.ToList());
        policy.PickDestination(WithKey("room-1"), cluster, cluster.DestinationsState.AvailableDestinations);
        Assert.Equal(1, Builds());

        var six = all.Append(new DestinationState("chat-6")).ToArray();
        cluster.DestinationsState = new ClusterDestinationsState(six, six);
        policy.PickDestination(WithKey("room-1"), cluster, six);
        Assert.Equal(2, Builds());
        Assert.Contains("over 6 destinations (960 points)", logs.Lines.Last(line => line.Id.Id == 800).Message);
    }

    [Theory]
    [InlineData("route:room", null)]
    [InlineData("query:room", null)]
    [InlineData("header:X-Room", null)]
    [InlineData("cookie:room", null)]
    [InlineData("route:room", "0123456789abcdef")]
    public void Picking_allocates_nothing(string hashKey, string? seed)
    {
        var cluster = Create(Names(5), hashKey, seed: seed);
        var all = cluster.DestinationsState.AllDestinations;
        var retry = all.Skip(2).ToArray();
        var keyed = new DefaultHttpContext();
        keyed.Request.RouteValues["room"] = "blue";
        keyed.Request.QueryString = new QueryString("?lang=en&room=blue%20room&x=1");
        keyed.Request.Headers["X-Room"] = "blue";
        keyed.Request.Headers.Cookie = "session=abc; room=blue; theme=dark";
        var keyless = new DefaultHttpContext();
        var policy = Policy();

        void PickMany()
        {
            for (var i = 0; i < 1_000; i++)
            {
                policy.PickDestination(keyed, cluster, all);
                policy.PickDestination(keyed, cluster, retry);
                policy.PickDestination(keyless, cluster, all);
            }
        }

        PickMany(); // builds the ring, reads the settings, fills the route values feature
        var before = GC.GetAllocatedBytesForCurrentThread();
        PickMany();
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }
}
