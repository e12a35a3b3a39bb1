using System.Net;
using Gateway.Configuration;
using Gateway.Handshake;
using Gateway.Policies;
using Gateway.Relay;
using Microsoft.Extensions.Time.Testing;

namespace Gateway.Tests.Relay;

/// <summary>The token buckets and the shared table, in virtual time (serial: one test measures the heap).</summary>
[Collection(Infrastructure.SerialCollection.Name)]
public sealed class RateBucketTests
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly Xunit.Abstractions.ITestOutputHelper _output;

    public RateBucketTests(Xunit.Abstractions.ITestOutputHelper output) => _output = output;

    private bool Take(ref TokenBucket bucket, double cost, BucketRate rate, out double wait) =>
        bucket.TryTake(cost, rate, _time.GetTimestamp(), _time.TimestampFrequency, out wait);

    [Fact]
    public void A_bucket_allows_its_burst_then_its_rate_and_says_how_long_to_wait()
    {
        var rate = new BucketRate(10, 5);
        var bucket = default(TokenBucket);
        for (var i = 0; i < 5; i++)
        {
            Assert.True(Take(ref bucket, 1, rate, out _));
        }
        Assert.False(Take(ref bucket, 1, rate, out var wait));
        Assert.Equal(0.1, wait, 3);
        _time.Advance(TimeSpan.FromMilliseconds(100));
        Assert.True(Take(ref bucket, 1, rate, out _));
        Assert.False(Take(ref bucket, 1, rate, out _));
        // Never more than the burst, however long it was idle.
        _time.Advance(TimeSpan.FromHours(1));
        var passed = 0;
        while (Take(ref bucket, 1, rate, out _))
        {
            passed++;
        }
        Assert.Equal(5, passed);
    }

    [Fact]
    public void A_message_larger_than_the_burst_passes_on_a_full_bucket_and_its_debt_holds_back_the_next()
    {
        var rate = new BucketRate(1000, 1000);
        var bucket = default(TokenBucket);
        Assert.True(Take(ref bucket, 5000, rate, out _)); // 4,000 owed
        Assert.False(Take(ref bucket, 1, rate, out var wait));
        Assert.Equal(4.001, wait, 3);
        _time.Advance(TimeSpan.FromSeconds(4.001));
        Assert.True(Take(ref bucket, 1, rate, out _));
    }

    [Fact]
    public void Shared_entries_of_a_flood_of_distinct_clients_expire_once_their_tunnels_are_gone_and_their_buckets_full()
    {
        var buckets = new SharedRateBuckets(_time);
        var rate = new BucketRate(10, 20); // refilled from empty in 2 s
        var open = new Queue<SharedBucket>();
        var most = 0;
        var before = 0L;
        // 100,000 distinct addresses over 100 virtual seconds (1,000 new tunnels a second, each open for 1 s and
        // sending a burst): the table holds what is open plus what is still refilling, whatever the total.
        for (var i = 0; i < 100_000; i++)
        {
            var address = new IPAddress(BitConverter.GetBytes(0x0A000000 + i));
            var entry = buckets.Acquire(new SharedBucketKey("chat", SharedBucketScope.Client, ClientKey.From(address, 64), null));
            lock (entry.Gate)
            {
                entry.MessageRate = rate;
                entry.Messages.TryTake(20, rate, _time.GetTimestamp(), _time.TimestampFrequency, out _);
            }
            open.Enqueue(entry);
            if (i % 100 == 99)
            {
                _time.Advance(TimeSpan.FromMilliseconds(100));
                while (open.Count > 1000)
                {
                    buckets.Release(open.Dequeue());
                }
                buckets.Expire();
                most = Math.Max(most, buckets.Count);
            }
            if (i == 20_000)
            {
                GC.Collect();
                before = GC.GetTotalMemory(forceFullCollection: true);
            }
        }
        GC.Collect();
        var after = GC.GetTotalMemory(forceFullCollection: true);
        // Open (1,000) + refilling for 2 s (2,000) + up to 1 s until the next expiry walk (1,000), never the 100,000.
        _output.WriteLine($"most entries at once: {most}; heap after 100,000 clients minus after 20,000: {after - before} B");
        Assert.InRange(most, 1000, 4500);
        // Kept, the 80,000 entries in between would be over 15 MB.
        Assert.True(after - before < 4_000_000, $"memory grew by {after - before} B between 20,000 and 100,000 clients");

        while (open.Count > 0)
        {
            buckets.Release(open.Dequeue());
        }
        _time.Advance(TimeSpan.FromSeconds(3));
        buckets.Expire(force: true);
        Assert.Equal(0, buckets.Count);
    }

    [Fact]
    public void An_entry_a_tunnel_holds_never_expires_and_a_later_acquire_after_expiry_gets_a_fresh_one()
    {
        var buckets = new SharedRateBuckets(_time);
        var key = new SharedBucketKey("chat", SharedBucketScope.User, default, "alice");
        var held = buckets.Acquire(key);
        _time.Advance(TimeSpan.FromMinutes(10));
        buckets.Expire(force: true);
        Assert.Equal(1, buckets.Count);
        Assert.Same(held, buckets.Acquire(key));
        buckets.Release(held);
        buckets.Release(held);
        _time.Advance(SharedRateBuckets.MaxIdle);
        buckets.Expire(force: true);
        Assert.Equal(0, buckets.Count);
        Assert.NotSame(held, buckets.Acquire(key));
    }

    [Fact]
    public void PerUser_follows_the_user_across_connections_from_two_addresses_and_does_not_apply_without_one()
    {
        var options = new WebSocketPolicyOptions();
        options.RateLimits.PerUser.Messages = new RateOptions { PerSecond = 1, Burst = 3 };
        var settings = RateLimitSettings.For(new WebSocketPolicy("chat", options))!;
        var shared = new SharedRateBuckets(_time);
        TunnelRateLimits Tunnel(string address, string? user) =>
            new(settings, shared, _time, "chat", "rooms", ClientKey.From(IPAddress.Parse(address), 64), user);
        RateDecision Send(TunnelRateLimits tunnel) => tunnel.FromClient(firstFrame: true, payload: 10, _time.GetTimestamp(), out _);

        var aliceHome = Tunnel("198.51.100.7", "alice");
        var aliceMobile = Tunnel("2001:db8:1::5", "alice");
        var bob = Tunnel("198.51.100.7", "bob");
        var anonymous = Tunnel("198.51.100.7", null);
        Assert.Equal(RateDecision.Pass, Send(aliceHome));
        Assert.Equal(RateDecision.Pass, Send(aliceMobile));
        Assert.Equal(RateDecision.Pass, Send(aliceHome));
        Assert.Equal(RateDecision.Close, Send(aliceMobile)); // alice's fourth, from either address
        Assert.Equal(RateDecision.Pass, Send(bob)); // same address as alice's first: users are counted apart
        for (var i = 0; i < 10; i++)
        {
            Assert.Equal(RateDecision.Pass, Send(anonymous)); // no user known: the per-user limit does not apply
        }
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(RateDecision.Pass, Send(aliceMobile));
        Assert.Equal(2, shared.Count); // alice's and bob's
        foreach (var tunnel in new[] { aliceHome, aliceMobile, bob, anonymous })
        {
            tunnel.Release();
        }
        _time.Advance(TimeSpan.FromSeconds(5));
        shared.Expire(force: true);
        Assert.Equal(0, shared.Count);
    }

    [Fact]
    public void A_frame_refused_by_a_shared_bucket_costs_the_connections_own_bucket_nothing()
    {
        var options = new WebSocketPolicyOptions();
        options.RateLimits.PerConnection.Messages = new RateOptions { PerSecond = 1, Burst = 2 };
        options.RateLimits.PerRoute.Messages = new RateOptions { PerSecond = 1, Burst = 1 };
        options.RateLimits.Action = RateLimitAction.Hold;
        var settings = RateLimitSettings.For(new WebSocketPolicy("chat", options))!;
        var shared = new SharedRateBuckets(_time);
        var first = new TunnelRateLimits(settings, shared, _time, "chat", "rooms", default, null);
        var second = new TunnelRateLimits(settings, shared, _time, "chat", "rooms", default, null);
        Assert.Equal(RateDecision.Pass, first.FromClient(true, 1, _time.GetTimestamp(), out _));
        // The route's one token is gone: the second tunnel is held, for the route's refill (1 s), not charged for it.
        Assert.Equal(RateDecision.Hold, second.FromClient(true, 1, _time.GetTimestamp(), out var wait));
        Assert.Equal(1, wait, 3);
        Assert.Equal(RateDecision.Hold, second.FromClient(true, 1, _time.GetTimestamp(), out _));
        _time.Advance(TimeSpan.FromSeconds(1));
        Assert.Equal(RateDecision.Pass, second.FromClient(true, 1, _time.GetTimestamp(), out _));
        _time.Advance(TimeSpan.FromSeconds(1));
        // Its own bucket still had 2 (nothing was taken by the holds): one passes now, with the route's new token.
        Assert.Equal(RateDecision.Pass, second.FromClient(true, 1, _time.GetTimestamp(), out _));
    }
}
