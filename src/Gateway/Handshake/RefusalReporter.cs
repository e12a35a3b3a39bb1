using System.Globalization;
using System.Net;
using Microsoft.Net.Http.Headers;

namespace Gateway.Handshake;

/// <summary>
/// Answers a refused handshake (status, the headers its rule calls for, a short text body), counts it, and logs it
/// at most once per reason per interval. The throttle is hand-written: Microsoft.Extensions.Logging has no per-message
/// rate limit, and a flood of bad handshakes must not turn into a flood of log lines.
/// </summary>
internal sealed class RefusalReporter
{
    private const int MaxDetailLength = 200;

    private readonly HandshakeMetrics _metrics;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly long _interval;
    private readonly long[] _nextLogAt;
    private readonly int[] _suppressed;
    private readonly AccessLogging.AccessLogWriter? _accessLog;

    /// <param name="accessLog">Gets one access line per refusal, unthrottled (the warning above is the throttled one).</param>
    public RefusalReporter(HandshakeMetrics metrics, ILogger logger, TimeProvider time, TimeSpan logInterval, AccessLogging.AccessLogWriter? accessLog = null)
    {
        _accessLog = accessLog;
        _metrics = metrics;
        _logger = logger;
        _time = time;
        _interval = (long)(logInterval.TotalSeconds * time.TimestampFrequency);
        var reasons = Enum.GetValues<RefusalReason>().Length;
        _nextLogAt = new long[reasons];
        _suppressed = new int[reasons];
    }

    /// <summary>The log category of refusals (for <c>Logging:LogLevel</c>).</summary>
    public const string LogCategory = "Gateway.Handshake";

    public Task RefuseAsync(HttpContext context, RefusalReason reason, string route, string? detail = null, TimeSpan retryAfter = default)
    {
        var refusal = Refusal.Of(reason);
        var response = context.Response;
        response.StatusCode = refusal.Status;
        var headers = response.Headers;
        var http1 = !HttpProtocol.IsHttp2(context.Request.Protocol) && !HttpProtocol.IsHttp3(context.Request.Protocol);
        switch (reason)
        {
            case RefusalReason.Method:
                // RFC 9110 section 15.5.6: a 405 lists the methods the target supports.
                headers.Allow = http1 ? "GET" : "CONNECT";
                break;
            case RefusalReason.Version:
                // RFC 6455 section 4.4: name the versions the server speaks.
                headers.SecWebSocketVersion = "13";
                break;
            case RefusalReason.NotWebSocket when http1:
                // RFC 9110 section 15.5.22: a 426 names the protocol to upgrade to. HTTP/2 forbids these headers
                // (RFC 9113 section 8.2.2); there the body says it.
                headers.Upgrade = "websocket";
                headers.Connection = "Upgrade";
                break;
            case RefusalReason.RateLimit:
                var seconds = Math.Max(1, (int)Math.Ceiling(retryAfter.TotalSeconds));
                headers.RetryAfter = seconds.ToString(CultureInfo.InvariantCulture);
                break;
        }
        if (refusal.RetryAfter is { } fixedRetryAfter)
        {
            // RFC 9110 section 10.2.3: the 503s for lack of room say when to come back (Refusal.NoRoomRetryAfterSeconds).
            headers.RetryAfter = fixedRetryAfter;
        }
        headers.CacheControl = "no-store";
        headers.XContentTypeOptions = "nosniff";
        response.ContentType = "text/plain; charset=utf-8";
        response.ContentLength = refusal.Body.Length;

        _metrics.Refused(reason, route);
        LogThrottled(refusal, route, context.Connection.RemoteIpAddress, detail);
        WriteAccessLine(context, refusal, route);
        return response.Body.WriteAsync(refusal.Body, context.RequestAborted).AsTask();
    }

    private void WriteAccessLine(HttpContext context, Refusal refusal, string route)
    {
        if (_accessLog is not { Enabled: true })
        {
            return;
        }
        var (tlsProtocol, tlsCipher) = AccessLogging.AccessLogEntry.TlsOf(context);
        _accessLog.Write(new AccessLogging.AccessLogEntry
        {
            Refused = true,
            Start = _time.GetUtcNow(),
            Client = context.Connection.RemoteIpAddress,
            ClientPort = context.Connection.RemotePort,
            Path = AccessLogging.AccessLogEntry.PathOf(context.Request),
            Route = route,
            Protocol = context.Request.Protocol,
            TlsProtocol = tlsProtocol,
            TlsCipher = tlsCipher,
            Status = refusal.Status,
            Reason = refusal.Tag,
        });
    }

    private void LogThrottled(Refusal refusal, string route, IPAddress? client, string? detail)
    {
        if (!_logger.IsEnabled(LogLevel.Information))
        {
            return;
        }
        var slot = (int)refusal.Reason;
        var now = _time.GetTimestamp();
        var next = Volatile.Read(ref _nextLogAt[slot]);
        if (now < next || Interlocked.CompareExchange(ref _nextLogAt[slot], now + _interval, next) != next)
        {
            Interlocked.Increment(ref _suppressed[slot]);
            return;
        }
        var suppressed = Interlocked.Exchange(ref _suppressed[slot], 0);
        if (client is { IsIPv4MappedToIPv6: true })
        {
            client = client.MapToIPv4();
        }
        var shown = detail is null ? string.Empty
            : $" ({(detail.Length > MaxDetailLength ? detail[..MaxDetailLength] + "..." : detail)})";
        if (suppressed == 0)
        {
            Log.Refused(_logger, refusal.Status, route, client, refusal.Text, shown);
        }
        else
        {
            Log.RefusedWithSuppressed(_logger, refusal.Status, route, client, refusal.Text, shown, suppressed);
        }
    }
}
