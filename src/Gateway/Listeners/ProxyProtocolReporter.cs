using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Net;
using Gateway.Metrics;

namespace Gateway.Listeners;

/// <summary>
/// Counts connections closed for want of a valid PROXY header, by listener and reason, and logs them at most once per
/// reason per second (a misconfigured balancer or a flood of direct clients must not become a flood of log lines).
/// Connections closed before sending a byte (TCP health checks, port scans) are counted but logged only at Debug.
/// </summary>
internal sealed class ProxyProtocolReporter
{
    public const string RejectedName = "gateway.proxy_protocol.rejected";

    /// <summary>The log category (for <c>Logging:LogLevel</c>), shared with the listeners' other messages.</summary>
    public const string LogCategory = "Gateway.Listeners";

    private static readonly int Reasons = Enum.GetValues<ProxyProtocolRejection>().Length;

    private readonly Counter<long> _rejected;
    private readonly ConcurrentDictionary<string, KeyValuePair<string, object?>[][]> _tagsByListener = new(StringComparer.Ordinal);
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly long _interval;
    private readonly long[] _nextLogAt = new long[Reasons];
    private readonly int[] _suppressed = new int[Reasons];

    public ProxyProtocolReporter(GatewayMeter meter, ILoggerFactory loggers, TimeProvider time)
    {
        _rejected = meter.Meter.CreateCounter<long>(RejectedName, "{connection}",
            "Connections on PROXY protocol listeners closed because they did not start with a valid PROXY header or came from an untrusted peer, by listener and reason");
        _logger = loggers.CreateLogger(LogCategory);
        _time = time;
        _interval = time.TimestampFrequency;
    }

    public void ListenerStarted(string listener, TimeSpan timeout, string trusted) => Log.ProxyProtocolListener(_logger, listener, timeout, trusted);

    public void Rejected(string listener, ProxyProtocolRejection reason, EndPoint? peer, string detail)
    {
        if (_rejected.Enabled)
        {
            _rejected.Add(1, _tagsByListener.GetOrAdd(listener, static name => BuildTags(name))[(int)reason]);
        }
        var level = reason == ProxyProtocolRejection.Empty ? LogLevel.Debug : LogLevel.Warning;
        if (!_logger.IsEnabled(level))
        {
            return;
        }
        var slot = (int)reason;
        var now = _time.GetTimestamp();
        var next = Volatile.Read(ref _nextLogAt[slot]);
        if (now < next || Interlocked.CompareExchange(ref _nextLogAt[slot], now + _interval, next) != next)
        {
            Interlocked.Increment(ref _suppressed[slot]);
            return;
        }
        var suppressed = Interlocked.Exchange(ref _suppressed[slot], 0);
        if (suppressed == 0)
        {
            Log.ProxyHeaderRejected(_logger, level, listener, peer, reason.Tag(), detail);
        }
        else
        {
            Log.ProxyHeaderRejectedWithSuppressed(_logger, level, listener, peer, reason.Tag(), detail, suppressed);
        }
    }

    private static KeyValuePair<string, object?>[][] BuildTags(string listener) =>
        ProxyProtocolRejections.Tags.Select(reason => new KeyValuePair<string, object?>[]
        {
            new("listener", listener),
            new("reason", reason),
        }).ToArray();
}
