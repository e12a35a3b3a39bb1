namespace Gateway.Relay;

/// <summary>
/// One line per tunnel when it ends, under a category of its own (<see cref="Category"/>) so that it can be routed,
/// formatted (JSON with the JSON console formatter) or turned off without touching the gateway's other logs. Nothing
/// is logged per frame. Absent values are <c>-</c>; the start is ISO 8601 in UTC.
/// </summary>
internal static partial class AccessLog
{
    public const string Category = "Gateway.AccessLog";

    [LoggerMessage(EventId = 320, Level = LogLevel.Information, Message =
        "{Start} {Client} {Route} {Cluster} {Destination} {Protocol} {Subprotocol} {DurationSeconds:0.000}s " +
        "client->backend {MessagesFromClient} msgs {BytesFromClient} B, backend->client {MessagesFromBackend} msgs {BytesFromBackend} B, " +
        "{CloseCode} {ClosedBy}")]
    public static partial void TunnelEnded(ILogger logger, string start, string client, string route, string cluster,
        string destination, string protocol, string subprotocol, double durationSeconds, long messagesFromClient,
        long bytesFromClient, long messagesFromBackend, long bytesFromBackend, ushort closeCode, string closedBy);
}
