using System.Globalization;
using System.Runtime.CompilerServices;
using Microsoft.Extensions.Options;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace Gateway.Health;

/// <summary>
/// The passive health policy <c>TransportFailureRate</c>, in place of YARP's: a destination whose requests failed at
/// the cluster's rate limit or more (YARP's options: 30 % of at least 10 requests in a 60 s window) is out for the
/// cluster's <c>ReactivationPeriod</c>, and comes back with a clean slate.
/// </summary>
/// <remarks>
/// YARP 2.3's policy keeps a destination out for the longer of <c>ReactivationPeriod</c> and its detection window
/// (60 s), since the failures that marked it would otherwise mark it again on its first request back; and a request
/// that ends cleanly while the destination is out lets it back at once. After a crash, the tunnels that die with the
/// backend mark it, and it stayed out for 60 s whatever the period said: a rolling restart that moved on sooner sent
/// every reconnect to the backend being stopped. Here the failures are forgotten when the destination is marked
/// (they are what it is out for), reports of requests that end while it is out are ignored (the same incident), and
/// a connection refused marks it at once, as the connect retry does. So it is out for exactly the period, and judged
/// afresh after it. Active health is separate: a destination either check calls unhealthy is out (YARP's
/// <c>HealthyAndUnknown</c>); a passing probe does not shorten the period.
/// </remarks>
internal sealed class FailureRatePolicy : IPassiveHealthCheckPolicy
{
    /// <summary>YARP's own default when a cluster sets no <c>ReactivationPeriod</c>.</summary>
    public static readonly TimeSpan DefaultReactivationPeriod = TimeSpan.FromSeconds(60);

    private readonly TransportFailureRateHealthPolicyOptions _options;
    private readonly IDestinationHealthUpdater _health;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ConditionalWeakTable<DestinationState, FailureHistory> _histories = new();

    public FailureRatePolicy(IOptions<TransportFailureRateHealthPolicyOptions> options, IDestinationHealthUpdater health,
        TimeProvider time, ILogger<FailureRatePolicy> logger)
    {
        _options = options.Value;
        _health = health;
        _time = time;
        _logger = logger;
    }

    public string Name => HealthCheckConstants.PassivePolicy.TransportFailureRate;

    public void RequestProxied(HttpContext context, ClusterState cluster, DestinationState destination)
    {
        var period = cluster.Model.Config.HealthCheck?.Passive?.ReactivationPeriod ?? DefaultReactivationPeriod;
        var history = _histories.GetValue(destination, static _ => new FailureHistory());
        var failed = Failed(context, out var refused);
        DestinationHealth verdict;
        double rate;
        lock (history)
        {
            if (destination.Health.Passive == DestinationHealth.Unhealthy)
            {
                history.Clear();
                return;
            }
            rate = refused ? 1 : history.Add(_time, _options.DetectionWindowSize, _options.MinimalTotalCountThreshold, failed);
            verdict = rate < RateLimit(cluster) ? DestinationHealth.Healthy : DestinationHealth.Unhealthy;
            if (verdict == DestinationHealth.Unhealthy)
            {
                history.Clear();
            }
            // Passed on under the lock: YARP's updater acts on every change, so a Healthy verdict reached just before a
            // mark but passed on after it would let the destination back at once, undoing the mark of the crash it is
            // out for (CI saw it: a crashed backend still Healthy after its tunnels had marked it).
            _health.SetPassive(cluster, destination, verdict, period);
        }
        if (verdict == DestinationHealth.Unhealthy)
        {
            Log.MarkedUnhealthy(_logger, cluster.ClusterId, destination.DestinationId, refused ? "a connection was refused" : $"{rate:P0} of its requests failed", period);
        }
    }

    private double RateLimit(ClusterState cluster) =>
        cluster.Model.Config.Metadata?.TryGetValue(TransportFailureRateHealthPolicyOptions.FailureRateLimitMetadataName, out var text) == true
        && double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var limit) ? limit : _options.DefaultFailureRateLimit;

    /// <summary>YARP's rule: a failure of the transport to or from the destination, unless the client had gone away.</summary>
    private static bool Failed(HttpContext context, out bool refused)
    {
        refused = false;
        if (context.Features.Get<IForwarderErrorFeature>() is not { } error || context.RequestAborted.IsCancellationRequested)
        {
            return false;
        }
        refused = ConnectFailure.TryGet(error.Error, error.Exception, out _);
        return error.Error is ForwarderError.Request or ForwarderError.RequestTimedOut or ForwarderError.RequestBodyDestination
            or ForwarderError.ResponseBodyDestination or ForwarderError.UpgradeRequestDestination or ForwarderError.UpgradeResponseDestination;
    }

    /// <summary>Requests and failures per second over the detection window: the seconds past, oldest first, and this one.</summary>
    private sealed class FailureHistory
    {
        private readonly Queue<(long Second, int Total, int Failed)> _past = new();
        private long _second = long.MinValue;
        private int _secondTotal;
        private int _secondFailed;
        private long _total;
        private long _failed;

        public double Add(TimeProvider time, TimeSpan window, int minimumTotal, bool failed)
        {
            var second = time.GetTimestamp() / time.TimestampFrequency;
            if (second != _second)
            {
                if (_secondTotal > 0)
                {
                    _past.Enqueue((_second, _secondTotal, _secondFailed));
                }
                _second = second;
                _secondTotal = 0;
                _secondFailed = 0;
            }
            var oldest = second - (long)Math.Ceiling(window.TotalSeconds);
            while (_past.TryPeek(out var record) && record.Second <= oldest)
            {
                _past.Dequeue();
                _total -= record.Total;
                _failed -= record.Failed;
            }
            var add = failed ? 1 : 0;
            _secondTotal++;
            _secondFailed += add;
            _total++;
            _failed += add;
            return _total < minimumTotal ? 0 : (double)_failed / _total;
        }

        public void Clear()
        {
            _past.Clear();
            _second = long.MinValue;
            _secondTotal = 0;
            _secondFailed = 0;
            _total = 0;
            _failed = 0;
        }
    }
}
