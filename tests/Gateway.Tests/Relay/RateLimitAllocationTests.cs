using System.Diagnostics;
using System.Net;
using Gateway.Configuration;
using Gateway.Handshake;
using Gateway.Policies;
using Gateway.Relay;
using Xunit.Abstractions;

namespace Gateway.Tests.Relay;

/// <summary>Asking the rate limits about a frame allocates nothing, and costs well under a microsecond.</summary>
[Collection(Infrastructure.SerialCollection.Name)]
public sealed class RateLimitAllocationTests(ITestOutputHelper output)
{
    [Fact]
    public void A_frame_within_every_limit_allocates_nothing()
    {
        var options = new WebSocketPolicyOptions();
        var big = new RateLimitScopeOptions
        {
            Messages = new RateOptions { PerSecond = 1e8, Burst = 1e8 },
            Bytes = new RateOptions { PerSecond = 1e11, Burst = 1e11 },
        };
        (options.RateLimits.PerConnection, options.RateLimits.PerClient, options.RateLimits.PerUser, options.RateLimits.PerRoute) = (big, big, big, big);
        options.RateLimits.BackendPerConnection = big;
        var settings = RateLimitSettings.For(new WebSocketPolicy("chat", options))!;
        var limits = new TunnelRateLimits(settings, new SharedRateBuckets(TimeProvider.System), TimeProvider.System, "chat", "rooms",
            ClientKey.From(IPAddress.Loopback, 64), "alice");
        var time = TimeProvider.System;

        for (var i = 0; i < 10_000; i++)
        {
            limits.FromClient(firstFrame: true, payload: 128, time.GetTimestamp(), out _); // the shared entries are taken here
            limits.FromBackend(firstFrame: true, payload: 128, time.GetTimestamp(), out _);
        }
        // Three rounds, judged by the least: anything per frame shows in every round (a byte a frame is 1 MB a round), while
        // the runtime's one-offs (tiering promotes these methods about 100 ms in, inside a round) land in one of them.
        const int Frames = 1_000_000;
        var rounds = new List<(long Allocated, TimeSpan Elapsed)>();
        for (var round = 0; round < 3; round++)
        {
            var before = GC.GetAllocatedBytesForCurrentThread();
            var clock = Stopwatch.StartNew();
            var passed = 0;
            for (var i = 0; i < Frames; i++)
            {
                passed += limits.FromClient(firstFrame: true, payload: 128, time.GetTimestamp(), out _) == RateDecision.Pass ? 1 : 0;
            }
            var elapsed = clock.Elapsed;
            Assert.Equal(Frames, passed);
            rounds.Add((GC.GetAllocatedBytesForCurrentThread() - before, elapsed));
        }
        output.WriteLine($"{Frames} client frames through 8 buckets (4 scopes x messages, bytes; 3 shared), 3 rounds: "
            + string.Join(", ", rounds.Select(r => $"{r.Elapsed.TotalNanoseconds / Frames:0} ns each, {r.Allocated} B allocated")));
        var least = rounds.Min(r => r.Allocated);
        Assert.True(least < 1024, $"{least} B for {Frames} frames in the best of 3 rounds");
        limits.Release();
    }
}
