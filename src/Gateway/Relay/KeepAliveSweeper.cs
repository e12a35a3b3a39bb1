using Gateway.Policies;

namespace Gateway.Relay;

/// <summary>
/// One periodic sweep drives keepalive for every open tunnel: no timer per connection. Each sweep asks every
/// registered tunnel whether it is due a ping, a reap or a forced teardown; a tunnel answers from a few
/// timestamps, so 100,000 idle tunnels cost a few milliseconds per sweep. Every <see cref="TrafficReportPeriod"/> the
/// sweep also adds what each tunnel relayed to the counters, so <c>rate()</c> sees long-lived tunnels.
/// </summary>
/// <remarks>
/// The sweep's clock, <see cref="Now"/>, is what tunnels stamp their reads and writes with: one field read instead of a
/// clock call per read, precise to one sweep period, which is as precise as the pings it drives. Time comes from the
/// injected <see cref="TimeProvider"/>, so tests run keepalive in virtual time.
/// </remarks>
internal sealed class KeepAliveSweeper : BackgroundService
{
    /// <summary>How often the traffic of open tunnels reaches the counters.</summary>
    public static readonly TimeSpan TrafficReportPeriod = TimeSpan.FromSeconds(10);

    private readonly object _gate = new();
    private RelayTunnel?[] _tunnels = new RelayTunnel?[256];
    private readonly Stack<int> _free = new();
    private int _count;
    private readonly ILogger<KeepAliveSweeper> _logger;
    private readonly long _startTimestamp;
    private long _now;
    private long _nextTrafficReport;

    private PeriodicTimer? _timer;

    public KeepAliveSweeper(WebSocketPolicies policies, TimeProvider time, ILogger<KeepAliveSweeper> logger, Metrics.GatewayMeter meter)
    {
        _logger = logger;
        Time = time;
        Policies = policies;
        _startTimestamp = time.GetTimestamp();
        RateBuckets = new SharedRateBuckets(time);
        // What per-client state costs, visible without a heap dump: bounded by the clients active in the last minute.
        meter.Meter.CreateObservableGauge("gateway.rate_limit.shared_buckets", () => RateBuckets.Count, "{bucket}",
            "Rate-limit buckets shared by the tunnels of one client, user or route, held now; one idle for a minute is dropped");
        Period = ChoosePeriod(policies);
        // Reloaded policies may ping more often: the sweep follows the shortest interval or timeout there is now.
        policies.Changed += () =>
        {
            Period = ChoosePeriod(policies);
            if (_timer is { } timer)
            {
                timer.Period = Period;
            }
        };
        _nextTrafficReport = (long)TrafficReportPeriod.TotalMilliseconds;
        Tick();
    }

    /// <summary>A quarter of the shortest interval or timeout, between 10 ms and 1 s: pings are late by at most that.</summary>
    public TimeSpan Period { get; private set; }

    /// <summary>The policies now in force: open tunnels take their keepalive timing from here when they reload.</summary>
    public WebSocketPolicies Policies { get; }

    public TimeProvider Time { get; }

    /// <summary>The buckets the rate limits share between tunnels (per client, user, route); idle ones expire from the sweep.</summary>
    public SharedRateBuckets RateBuckets { get; }

    /// <summary>Milliseconds since the sweeper started (plus one), as of the last sweep.</summary>
    internal long Now => Volatile.Read(ref _now);

    internal int Register(RelayTunnel tunnel)
    {
        lock (_gate)
        {
            if (!_free.TryPop(out var slot))
            {
                if (_count == _tunnels.Length)
                {
                    Array.Resize(ref _tunnels, _tunnels.Length * 2);
                }
                slot = _count++;
            }
            Volatile.Write(ref _tunnels[slot], tunnel);
            return slot;
        }
    }

    internal void Unregister(int slot, RelayTunnel tunnel)
    {
        lock (_gate)
        {
            if (slot < _tunnels.Length && ReferenceEquals(_tunnels[slot], tunnel))
            {
                _tunnels[slot] = null;
                _free.Push(slot);
            }
        }
    }

    /// <summary>Tunnels registered now (for tests and metrics).</summary>
    public int OpenTunnels
    {
        get
        {
            lock (_gate)
            {
                return _count - _free.Count;
            }
        }
    }

    /// <summary>The open tunnels, as of now (a copy: the drain closes them while they unregister).</summary>
    internal List<RelayTunnel> Snapshot()
    {
        var open = new List<RelayTunnel>();
        lock (_gate)
        {
            for (var i = 0; i < _count; i++)
            {
                if (_tunnels[i] is { } tunnel)
                {
                    open.Add(tunnel);
                }
            }
        }
        return open;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Period, Time);
        _timer = timer;
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
        {
            Sweep();
        }
    }

    /// <summary>Reads the clock into <see cref="Now"/>: never 0, which the tunnels' fields use for "never" and "none".</summary>
    internal long Tick()
    {
        var now = 1 + (long)Time.GetElapsedTime(_startTimestamp).TotalMilliseconds;
        Volatile.Write(ref _now, now);
        return now;
    }

    internal void Sweep()
    {
        var now = Tick();
        var reportTraffic = now >= _nextTrafficReport;
        if (reportTraffic)
        {
            _nextTrafficReport = now + (long)TrafficReportPeriod.TotalMilliseconds;
        }
        // Read the array without the lock: slots only change from one tunnel to null or back, and a tunnel seen
        // just after it unregistered only finds itself completed.
        var tunnels = Volatile.Read(ref _tunnels);
        var count = Math.Min(Volatile.Read(ref _count), tunnels.Length);
        for (var i = 0; i < count; i++)
        {
            var tunnel = Volatile.Read(ref tunnels[i]);
            if (tunnel is null)
            {
                continue;
            }
            try
            {
                tunnel.OnSweep(now);
                if (reportTraffic)
                {
                    tunnel.ReportTraffic();
                }
            }
            catch (Exception ex)
            {
                Log.SweepFailed(_logger, ex);
            }
        }
        RateBuckets.Expire();
    }

    private static TimeSpan ChoosePeriod(WebSocketPolicies policies)
    {
        var shortest = TimeSpan.FromSeconds(4);
        foreach (var policy in policies.All)
        {
            if (policy.KeepAliveEnabled)
            {
                var keepAlive = policy.Options.KeepAlive;
                shortest = TimeSpan.FromTicks(Math.Min(shortest.Ticks, Math.Min(keepAlive.Interval.Ticks, keepAlive.Timeout.Ticks)));
            }
        }
        var period = shortest / 4;
        return period < TimeSpan.FromMilliseconds(10) ? TimeSpan.FromMilliseconds(10) : period > TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : period;
    }
}
