using Gateway.Policies;
using Gateway.Relay;

namespace Gateway.KeepAlive;

/// <summary>
/// One periodic sweep drives keepalive for every open tunnel: no timer per connection. Each sweep asks every
/// registered tunnel whether it is due a ping, a reap or a forced teardown; a tunnel answers from a few
/// timestamps, so 100,000 idle tunnels cost a few milliseconds per sweep.
/// </summary>
public sealed class KeepAliveSweeper : BackgroundService
{
    private readonly object _gate = new();
    private RelayTunnel?[] _tunnels = new RelayTunnel?[256];
    private readonly Stack<int> _free = new();
    private int _count;
    private readonly ILogger<KeepAliveSweeper> _logger;

    public KeepAliveSweeper(WebSocketPolicies policies, IHostApplicationLifetime lifetime, ILogger<KeepAliveSweeper> logger)
    {
        _logger = logger;
        Period = ChoosePeriod(policies);
        // Draining starts with shutdown, before the server stops: open tunnels get a proper Close, not a cut.
        lifetime.ApplicationStopping.Register(DrainAll);
    }

    /// <summary>A quarter of the shortest interval or timeout, between 10 ms and 1 s: pings are late by at most that.</summary>
    public TimeSpan Period { get; }

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

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(Period);
        while (await timer.WaitForNextTickAsync(stoppingToken).ConfigureAwait(false))
        {
            Sweep(Environment.TickCount64);
        }
    }

    internal void Sweep(long now)
    {
        // Read the array without the lock: slots only change from one tunnel to null or back, and a tunnel seen
        // just after it unregistered only finds itself closed.
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
            }
            catch (Exception ex)
            {
                Log.SweepFailed(_logger, ex);
            }
        }
    }

    private void DrainAll()
    {
        var tunnels = Volatile.Read(ref _tunnels);
        var count = 0;
        for (var i = 0; i < tunnels.Length; i++)
        {
            if (Volatile.Read(ref tunnels[i]) is { } tunnel)
            {
                count++;
                _ = tunnel.DrainAsync();
            }
        }
        Log.Draining(_logger, count);
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
