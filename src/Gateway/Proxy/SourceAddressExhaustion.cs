using System.Diagnostics.Metrics;
using Gateway.Metrics;

namespace Gateway.Proxy;

/// <summary>
/// Counts the WebSocket handshakes answered 502 because the gateway had no local port left to reach the backend
/// from any source address, and says so at most once per 10 s (with how many since the last line), so a flood of
/// them is one warning, not a line and a stack trace per connection.
/// </summary>
internal sealed class SourceAddressExhaustion
{
    private static readonly TimeSpan WarningInterval = TimeSpan.FromSeconds(10);

    private readonly Counter<long> _exhausted;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly long _interval;
    private long _nextWarningAt = long.MinValue;
    private int _sinceWarning;

    public SourceAddressExhaustion(GatewayMeter meter, TimeProvider time, ILogger<SourceAddressExhaustion> logger)
    {
        _exhausted = meter.Meter.CreateCounter<long>("gateway.proxy.source_address_exhausted", "{handshake}",
            "WebSocket handshakes answered 502 because no source address had a local port free for the backend (the gateway's limit, not the backend's fault)");
        _time = time;
        _logger = logger;
        _interval = (long)(WarningInterval.TotalSeconds * time.TimestampFrequency);
    }

    public void Report(string destination, string sources, string error)
    {
        _exhausted.Add(1);
        Interlocked.Increment(ref _sinceWarning);
        var now = _time.GetTimestamp();
        var next = Volatile.Read(ref _nextWarningAt);
        if (now >= next && Interlocked.CompareExchange(ref _nextWarningAt, now + _interval, next) == next)
        {
            Log.SourceAddressesExhausted(_logger, destination, sources, Interlocked.Exchange(ref _sinceWarning, 0), error);
        }
    }
}
