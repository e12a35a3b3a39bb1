namespace Gateway.Relay;

internal static partial class Log
{
    [LoggerMessage(EventId = 300, Level = LogLevel.Information, Message = "Route {Route}: the client stopped answering pings; closed its tunnel (client {ClientCode}, backend {BackendCode})")]
    public static partial void ClientReaped(ILogger logger, string route, ushort clientCode, ushort backendCode);

    [LoggerMessage(EventId = 301, Level = LogLevel.Warning, Message = "Route {Route}: {Reason}; closed its tunnel (client {ClientCode})")]
    public static partial void BackendReaped(ILogger logger, string route, string reason, ushort clientCode);

    [LoggerMessage(EventId = 302, Level = LogLevel.Information, Message = "Route {Route}: the client broke a frame rule ({Reason}); closed with {ClientCode}, backend told {BackendCode}")]
    public static partial void ClientViolation(ILogger logger, string route, string reason, ushort clientCode, ushort backendCode);

    [LoggerMessage(EventId = 303, Level = LogLevel.Warning, Message = "Route {Route}: the backend broke a frame rule ({Reason}); closed with {BackendCode}, client told {ClientCode}")]
    public static partial void BackendViolation(ILogger logger, string route, string reason, ushort clientCode, ushort backendCode);

    [LoggerMessage(EventId = 304, Level = LogLevel.Warning, Message = "Route {Route}: the backend connection ended without a Close ({Error}); client told {ClientCode}")]
    public static partial void BackendLost(ILogger logger, string route, string error, ushort clientCode);

    [LoggerMessage(EventId = 305, Level = LogLevel.Debug, Message = "Route {Route}: the client went away without a Close ({Error}); backend told 1001")]
    public static partial void ClientLost(ILogger logger, string route, string error);

    [LoggerMessage(EventId = 306, Level = LogLevel.Information, Message = "Route {Route}: the client stopped reading (bytes unsent for {TimeoutMs} ms); cut its connection, backend told {BackendCode}")]
    public static partial void ClientStalled(ILogger logger, string route, long timeoutMs, ushort backendCode);

    [LoggerMessage(EventId = 307, Level = LogLevel.Error, Message = "Route {Route}: a relay task failed")]
    public static partial void BackgroundFailed(ILogger logger, string route, Exception exception);

    [LoggerMessage(EventId = 309, Level = LogLevel.Debug, Message = "Route {Route}: a tunnel reached its policy's MaxLifetime; closed with {Code} on both sides")]
    public static partial void LifetimeEnded(ILogger logger, string route, ushort code);

    [LoggerMessage(EventId = 319, Level = LogLevel.Debug, Message = "Route {Route}: the token of a tunnel expired (Identity:OnExpiry Close); closed with {Code} on both sides")]
    public static partial void TokenExpired(ILogger logger, string route, ushort code);

    [LoggerMessage(EventId = 310, Level = LogLevel.Debug, Message = "Route {Route}: no frame from either peer for {TimeoutSeconds} s (the cluster's ActivityTimeout); closed with {Code} on both sides")]
    public static partial void IdleTimeout(ILogger logger, string route, double timeoutSeconds, ushort code);

    [LoggerMessage(EventId = 311, Level = LogLevel.Error, Message = "Route {Route}: the relay loop failed")]
    public static partial void RelayFailed(ILogger logger, string route, Exception exception);

    [LoggerMessage(EventId = 312, Level = LogLevel.Warning, Message = "Cluster {Cluster}: no destination is available for a WebSocket handshake; answered 503")]
    public static partial void NoAvailableDestinations(ILogger logger, string cluster);

    [LoggerMessage(EventId = 313, Level = LogLevel.Warning, Message = "WebSocket handshake failed ({Error}): {Message}")]
    public static partial void HandshakeFailed(ILogger logger, Yarp.ReverseProxy.Forwarder.ForwarderError error, string message, Exception? exception);

    [LoggerMessage(EventId = 314, Level = LogLevel.Debug, Message = "Destination {Destination} takes no WebSockets over HTTP/2 ({Reason}); trying HTTP/1.1")]
    public static partial void Http2WebSocketsRefused(ILogger logger, string destination, string reason);

    [LoggerMessage(EventId = 315, Level = LogLevel.Information, Message = "Route {Route}: the {Side} went over its rate limit; closed with {Code}, the other side told {OtherCode}")]
    public static partial void RateLimitClosed(ILogger logger, string route, string side, ushort code, ushort otherCode);

    [LoggerMessage(EventId = 316, Level = LogLevel.Debug, Message = "Route {Route}: the tunnel took the client's socket over from the transport ({Buffered} bytes already received)")]
    public static partial void SocketTakenOver(ILogger logger, string route, int buffered);

    [LoggerMessage(EventId = 317, Level = LogLevel.Debug, Message = "Route {Route}: the tunnel's TLS connection reads and writes its socket directly (the transport's loops stopped)")]
    public static partial void TlsWentDirect(ILogger logger, string route);

    [LoggerMessage(EventId = 400, Level = LogLevel.Error, Message = "Keepalive sweep failed for a tunnel")]
    public static partial void SweepFailed(ILogger logger, Exception exception);
}
