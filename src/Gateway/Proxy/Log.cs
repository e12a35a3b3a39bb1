namespace Gateway.Proxy;

internal static partial class Log
{
    // The message only, no stack trace: a dead backend is an operational event, and YARP logs the exception itself.
    [LoggerMessage(EventId = 700, Level = LogLevel.Warning, Message = "Cluster {Cluster}: could not connect to destination {Destination}: {Error}; {Outcome}")]
    public static partial void ConnectFailed(ILogger logger, string cluster, string destination, string error, string outcome);

    // Throttled by SourceAddressExhaustion: one line per 10 s, counting the handshakes refused since the last.
    [LoggerMessage(EventId = 701, Level = LogLevel.Warning,
        Message = "No local port left to reach {Destination} from {Sources} ({Error}): answered {Refused} WebSocket handshakes with 502 since the last warning. Add source addresses (Gateway:Upstream:SourceAddresses) or backends")]
    public static partial void SourceAddressesExhausted(ILogger logger, string destination, string sources, int refused, string error);
}
