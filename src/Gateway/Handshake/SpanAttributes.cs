namespace Gateway.Handshake;

/// <summary>
/// The handshake span's attribute names: OpenTelemetry's semantic conventions where one exists (HTTP server spans,
/// <c>error.type</c>), <c>gateway.*</c> for what is the gateway's own.
/// </summary>
internal static class SpanAttributes
{
    public const string RequestMethod = "http.request.method";
    public const string StatusCode = "http.response.status_code";

    /// <summary>The route's path template (<c>/chat/{**room}</c>), when it has one.</summary>
    public const string RouteTemplate = "http.route";
    public const string UrlScheme = "url.scheme";
    public const string UrlPath = "url.path";
    public const string ProtocolVersion = "network.protocol.version";
    public const string ServerAddress = "server.address";
    public const string ServerPort = "server.port";
    public const string ClientAddress = "client.address";

    /// <summary>A refusal's reason, YARP's forwarding error, or the status a backend refused with.</summary>
    public const string ErrorType = "error.type";

    /// <summary>The YARP route id.</summary>
    public const string Route = "gateway.route";
    public const string Cluster = "gateway.cluster";
    public const string Destination = "gateway.destination";

    /// <summary>The subprotocol the backend agreed to (RFC 6455 section 4.2.2); absent when none.</summary>
    public const string Subprotocol = "gateway.websocket.subprotocol";

    /// <summary>Why the gate refused the handshake: the <c>reason</c> label of <c>gateway_handshake_refused_total</c>.</summary>
    public const string RefusalReason = "gateway.refusal.reason";

    /// <summary>W3C Trace Context (https://www.w3.org/TR/trace-context/).</summary>
    public const string TraceParentHeader = "traceparent";
    public const string TraceStateHeader = "tracestate";
}
