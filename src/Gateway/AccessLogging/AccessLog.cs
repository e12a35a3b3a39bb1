namespace Gateway.AccessLogging;

/// <summary>
/// The text format's lines, under a category of their own (<see cref="Category"/>) so that they can be routed or
/// turned off without touching the gateway's other logs: one per tunnel when it ends (320), one per refused handshake
/// (321). Nothing is logged per frame. Absent values are <c>-</c>; the start is ISO 8601 in UTC.
/// </summary>
internal static partial class AccessLog
{
    public const string Category = "Gateway.AccessLog";

    public static readonly EventId TunnelEndedId = new(320, nameof(TunnelEnded));
    public static readonly EventId HandshakeRefusedId = new(321, nameof(HandshakeRefused));

    [LoggerMessage(EventId = 320, Level = LogLevel.Information, Message =
        "{Start} {Client} {ClientPort} {Path} {Route} {Cluster} {Destination} {Protocol} {TlsProtocol} {TlsCipher} {Subprotocol} " +
        "{DurationSeconds:0.000}s client->backend {MessagesFromClient} msgs {BytesFromClient} B, " +
        "backend->client {MessagesFromBackend} msgs {BytesFromBackend} B, {CloseCode} {ClosedBy}")]
    public static partial void TunnelEnded(ILogger logger, string start, string client, string clientPort, string path,
        string route, string cluster, string destination, string protocol, string tlsProtocol, string tlsCipher,
        string subprotocol, double durationSeconds, long messagesFromClient, long bytesFromClient,
        long messagesFromBackend, long bytesFromBackend, ushort closeCode, string closedBy);

    /// <summary>The tunnel line of a tunnel a rate limit acted on: the same, and what the limit did at the end.</summary>
    [LoggerMessage(EventId = 320, Level = LogLevel.Information, Message =
        "{Start} {Client} {ClientPort} {Path} {Route} {Cluster} {Destination} {Protocol} {TlsProtocol} {TlsCipher} {Subprotocol} " +
        "{DurationSeconds:0.000}s client->backend {MessagesFromClient} msgs {BytesFromClient} B, " +
        "backend->client {MessagesFromBackend} msgs {BytesFromBackend} B, {CloseCode} {ClosedBy} rate_limited={RateLimited}")]
    public static partial void TunnelEndedLimited(ILogger logger, string start, string client, string clientPort, string path,
        string route, string cluster, string destination, string protocol, string tlsProtocol, string tlsCipher,
        string subprotocol, double durationSeconds, long messagesFromClient, long bytesFromClient,
        long messagesFromBackend, long bytesFromBackend, ushort closeCode, string closedBy, string rateLimited);

    [LoggerMessage(EventId = 321, Level = LogLevel.Information, Message =
        "{Start} {Client} {ClientPort} {Path} {Route} {Protocol} {TlsProtocol} {TlsCipher} refused {Status} {Reason}")]
    public static partial void HandshakeRefused(ILogger logger, string start, string client, string clientPort, string path,
        string route, string protocol, string tlsProtocol, string tlsCipher, int status, string reason);
}
