using Gateway.Health;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace Gateway.Tests.Proxy;

/// <summary>
/// The passive policy's rules in virtual time: out for exactly the period, judged afresh after it, deaf to what ends
/// while it is out. (YARP 2.3's policy asks for max(period, 60 s) and counts the old failures again on return.)
/// </summary>
public sealed class FailureRatePolicyTests
{
    private static readonly TimeSpan Period = TimeSpan.FromSeconds(30);

    private readonly FakeTimeProvider _time = new(DateTimeOffset.UnixEpoch);
    private readonly RecordingUpdater _health = new();
    private readonly ClusterState _cluster = new("chat", new ClusterModel(new ClusterConfig
    {
        ClusterId = "chat",
        HealthCheck = new HealthCheckConfig { Passive = new PassiveHealthCheckConfig { Enabled = true, ReactivationPeriod = Period } },
    }, new HttpMessageInvoker(new SocketsHttpHandler())));
    private readonly DestinationState _destination = new("chat-1");
    private readonly FailureRatePolicy _policy;

    public FailureRatePolicyTests() =>
        _policy = new FailureRatePolicy(Options.Create(new TransportFailureRateHealthPolicyOptions()), _health, _time, NullLogger<FailureRatePolicy>.Instance);

    [Fact]
    public void A_crash_marks_the_destination_for_the_period_and_it_returns_with_a_clean_slate()
    {
        for (var i = 0; i < 10; i++)
        {
            Report(ForwarderError.UpgradeResponseDestination);
        }
        Assert.Equal(DestinationHealth.Unhealthy, _destination.Health.Passive);
        Assert.Equal(Period, _health.Calls[^1].Period);

        // More tunnels of the same crash end while it is out: not counted, and no call that could let it back early.
        var calls = _health.Calls.Count;
        _time.Advance(TimeSpan.FromSeconds(1));
        Report(ForwarderError.UpgradeResponseDestination);
        Report(null);
        Assert.Equal(calls, _health.Calls.Count);

        // YARP reactivates it after the period; the first requests back are judged on their own.
        _time.Advance(Period);
        _destination.Health.Passive = DestinationHealth.Unknown;
        Report(null);
        Assert.Equal(DestinationHealth.Healthy, _destination.Health.Passive);
        for (var i = 0; i < 8; i++)
        {
            Report(null);
        }
        Report(ForwarderError.UpgradeResponseDestination);
        Assert.Equal(DestinationHealth.Healthy, _destination.Health.Passive); // 1 of 10
    }

    [Fact]
    public void A_refused_connect_marks_it_at_once_and_a_client_that_left_never_counts()
    {
        for (var i = 0; i < 20; i++)
        {
            Report(ForwarderError.UpgradeResponseDestination, clientGone: true);
        }
        Assert.Equal(DestinationHealth.Healthy, _destination.Health.Passive);

        Report(ForwarderError.Request, exception: new HttpRequestException(HttpRequestError.ConnectionError, "Connection refused"));
        Assert.Equal(DestinationHealth.Unhealthy, _destination.Health.Passive);
        Assert.Equal(Period, _health.Calls[^1].Period);
    }

    [Fact]
    public void Failures_age_out_of_the_window()
    {
        for (var i = 0; i < 9; i++)
        {
            Report(ForwarderError.UpgradeResponseDestination);
        }
        Assert.Equal(DestinationHealth.Healthy, _destination.Health.Passive); // fewer than 10 requests: not judged
        _time.Advance(TimeSpan.FromSeconds(61));
        for (var i = 0; i < 10; i++)
        {
            Report(null);
        }
        Report(ForwarderError.UpgradeResponseDestination);
        Assert.Equal(DestinationHealth.Healthy, _destination.Health.Passive); // 1 of 11: the 9 are gone
    }

    [Fact]
    public async Task A_healthy_verdict_reached_before_the_mark_is_not_passed_on_after_it()
    {
        for (var i = 0; i < 8; i++)
        {
            Report(ForwarderError.UpgradeResponseDestination); // fewer than 10 requests: not judged, Healthy
        }

        // The 9th failure is still judged Healthy; its call to YARP's updater is held up, as a preempted thread would be.
        _health.HoldNextHealthy = true;
        var ninth = Task.Factory.StartNew(() => Report(ForwarderError.UpgradeResponseDestination), TaskCreationOptions.LongRunning);
        Assert.True(_health.Held.Wait(TimeSpan.FromSeconds(10)), "the 9th report never reached the updater");

        // The 10th marks it. With the verdict passed on outside the policy's lock the mark lands now, and the 9th's Healthy
        // after it lets the destination back at once; under the lock the 10th waits for the 9th.
        var tenth = Task.Factory.StartNew(() => Report(ForwarderError.UpgradeResponseDestination), TaskCreationOptions.LongRunning);
        await Task.WhenAny(tenth, Task.Delay(TimeSpan.FromSeconds(1)));
        _health.Release.Set();
        await ninth.WaitAsync(TimeSpan.FromSeconds(10));
        await tenth.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal([DestinationHealth.Healthy, DestinationHealth.Unhealthy], _health.Calls.Select(c => c.Health).TakeLast(2));
        Assert.Equal(DestinationHealth.Unhealthy, _destination.Health.Passive);
    }

    [Fact]
    public async Task An_enabled_passive_check_without_a_period_gets_the_default_written_into_its_cluster()
    {
        var defaults = new Gateway.Proxy.ProxyConfigDefaults(new Gateway.Policies.WebSocketPolicies(Infrastructure.InMemoryGatewayOptions.Load()));
        ClusterConfig Cluster(PassiveHealthCheckConfig passive) => new()
        {
            ClusterId = "chat",
            HealthCheck = new HealthCheckConfig { Passive = passive },
            Destinations = new Dictionary<string, DestinationConfig> { ["one"] = new() { Address = "http://127.0.0.1:5999/" } },
        };

        var unset = await defaults.ConfigureClusterAsync(Cluster(new PassiveHealthCheckConfig { Enabled = true }), CancellationToken.None);
        var set = await defaults.ConfigureClusterAsync(Cluster(new PassiveHealthCheckConfig { Enabled = true, ReactivationPeriod = Period }), CancellationToken.None);
        var off = await defaults.ConfigureClusterAsync(Cluster(new PassiveHealthCheckConfig { Enabled = false }), CancellationToken.None);

        Assert.Equal(TimeSpan.FromSeconds(60), unset.HealthCheck!.Passive!.ReactivationPeriod);
        Assert.Equal(Period, set.HealthCheck!.Passive!.ReactivationPeriod);
        Assert.Null(off.HealthCheck!.Passive!.ReactivationPeriod);
    }

    private void Report(ForwarderError? error, bool clientGone = false, Exception? exception = null)
    {
        var context = new DefaultHttpContext();
        if (error is { } value)
        {
            context.Features.Set<IForwarderErrorFeature>(new ErrorFeature(value, exception));
        }
        if (clientGone)
        {
            var aborted = new CancellationTokenSource();
            aborted.Cancel();
            context.RequestAborted = aborted.Token;
        }
        _policy.RequestProxied(context, _cluster, _destination);
    }

    private sealed record ErrorFeature(ForwarderError Error, Exception? Exception) : IForwarderErrorFeature;

    /// <summary>
    /// Sets the destination's passive health as YARP's updater does, and remembers each call; can hold one Healthy call
    /// until released, as a preempted thread would.
    /// </summary>
    private sealed class RecordingUpdater : IDestinationHealthUpdater
    {
        private readonly Lock _lock = new();
        private readonly List<(DestinationHealth Health, TimeSpan Period)> _calls = [];

        public volatile bool HoldNextHealthy;
        public ManualResetEventSlim Held { get; } = new();
        public ManualResetEventSlim Release { get; } = new();

        public IReadOnlyList<(DestinationHealth Health, TimeSpan Period)> Calls
        {
            get
            {
                lock (_lock)
                {
                    return _calls.ToList();
                }
            }
        }

        public void SetActive(ClusterState cluster, IEnumerable<NewActiveDestinationHealth> newHealthStates)
        {
        }

        public void SetPassive(ClusterState cluster, DestinationState destination, DestinationHealth newHealth, TimeSpan reactivationPeriod)
        {
            if (newHealth == DestinationHealth.Healthy && HoldNextHealthy)
            {
                HoldNextHealthy = false;
                Held.Set();
                Release.Wait(TimeSpan.FromSeconds(10));
            }
            lock (_lock)
            {
                _calls.Add((newHealth, reactivationPeriod));
                destination.Health.Passive = newHealth;
            }
        }
    }
}
