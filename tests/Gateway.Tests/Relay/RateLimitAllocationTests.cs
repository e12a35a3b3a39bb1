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
        const int Frames = 1_000_000;
        var before = GC.GetAllocatedBytesForCurrentThread();
        var clock = Stopwatch.StartNew();
        var passed = 0;
        for (var i = 0; i < Frames; i++)
        {
            passed += limits.FromClient(firstFrame: true, payload: 128, time.GetTimestamp(), out _) == RateDecision.Pass ? 1 : 0;
        }
        var elapsed = clock.Elapsed;
        Assert.Equal(Frames, passed);
        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        output.WriteLine($"{Frames} client frames through 8 buckets (4 scopes x messages, bytes; 3 shared): {elapsed.TotalNanoseconds / Frames:0} ns each, {allocated} B allocated");
        // Nothing per frame: what a million frames leave is the runtime's one-off (tiered compilation), under 1 KiB.
        Assert.True(allocated < 1024, $"{allocated} B for {Frames} frames");
        limits.Release();
    }
}
