using static Gateway.Tests.LoadBalancing.HashClusters;

namespace Gateway.Tests.LoadBalancing;

/// <summary>
/// The cluster's <c>HashSeed</c> is mixed into every key's hash: without it anyone can compute which room names land on
/// one backend (issue 22); with it, replicas that share the seed agree, and other seeds place keys elsewhere.
/// </summary>
public sealed class HashSeedTests
{
    private const string SeedA = "kP3q9ZxV7mW2rT8yB4nL";
    private const string SeedB = "Hq7VtR2wX9cZ5mN1pL8k";

    [Fact]
    public void Replicas_with_one_seed_agree_and_another_seed_places_keys_differently()
    {
        var keys = Keys(3_000);
        // Two replicas: separate policies over separately built state, the configuration listed in other orders.
        var one = Assign(Policy(), Create(Names(5), seed: SeedA), keys);
        var other = Assign(Policy(), Create(Names(5).Reverse(), seed: SeedA), keys);
        var seedB = Assign(Policy(), Create(Names(5), seed: SeedB), keys);
        var unseeded = Assign(Policy(), Create(Names(5)), keys);

        Assert.Equal(one, other);
        // With five destinations, independent placements agree on about one key in five.
        var sameAsB = Enumerable.Range(0, keys.Length).Count(i => one[i] == seedB[i]) / (double)keys.Length;
        var sameAsUnseeded = Enumerable.Range(0, keys.Length).Count(i => one[i] == unseeded[i]) / (double)keys.Length;
        Assert.InRange(sameAsB, 0.1, 0.3);
        Assert.InRange(sameAsUnseeded, 0.1, 0.3);
    }

    [Fact]
    public void Room_names_chosen_to_pile_onto_one_backend_spread_once_a_seed_is_set()
    {
        // What a client can do without a seed: compute the placement and keep the names that land on chat-1.
        var candidates = Keys(2_000);
        var unseeded = Assign(Policy(), Create(Names(4)), candidates);
        var chosen = candidates.Where((_, i) => unseeded[i] == "chat-1").Take(200).ToArray();
        Assert.Equal(200, chosen.Length);

        var seeded = Assign(Policy(), Create(Names(4), seed: SeedA), chosen);

        var counts = seeded.GroupBy(d => d).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(4, counts.Count);
        Assert.All(counts.Values, count => Assert.InRange(count, 25, 80));
    }

    [Fact]
    public void Without_a_seed_keys_hash_as_before()
    {
        // The pinned placement of HashKeyTests: an unseeded cluster must not move rooms on upgrade.
        var context = WithKey("lobby");
        Assert.True(Gateway.LoadBalancing.ConsistentHashSettings.Read(Create(Names(2)).Model.Config, out _, out _)!.Key.TryHash(context, out var hash));
        Assert.Equal(0xb4eaf00bb6c1c767UL, hash);
    }
}
