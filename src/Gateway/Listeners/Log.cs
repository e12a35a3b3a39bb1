using System.Net;

namespace Gateway.Listeners;

internal static partial class Log
{
    [LoggerMessage(EventId = 160, Message = "Closed a connection on listener {Listener} from {Peer}: no valid PROXY protocol header ({Reason}: {Detail})")]
    public static partial void ProxyHeaderRejected(ILogger logger, LogLevel level, string listener, EndPoint? peer, string reason, string detail);

    [LoggerMessage(EventId = 161, Message = "Closed a connection on listener {Listener} from {Peer}: no valid PROXY protocol header ({Reason}: {Detail}); {Suppressed} more for this reason since the last such line were not logged")]
    public static partial void ProxyHeaderRejectedWithSuppressed(ILogger logger, LogLevel level, string listener, EndPoint? peer, string reason, string detail, int suppressed);

    [LoggerMessage(EventId = 162, Level = LogLevel.Information,
        Message = "Listener {Listener} expects a PROXY protocol header (v1 or v2) on every connection within {Timeout}; the client address it names replaces the balancer's. Trusted peers: {Trusted}; any other is closed")]
    public static partial void ProxyProtocolListener(ILogger logger, string listener, TimeSpan timeout, string trusted);
}
