using System.Net;

namespace Gateway.Handshake;

internal static partial class Log
{
    [LoggerMessage(EventId = 500, Level = LogLevel.Information,
        Message = "Refused a WebSocket handshake with {Status} on route {Route} from {Client}: {Reason}{Detail}")]
    public static partial void Refused(ILogger logger, int status, string route, IPAddress? client, string reason, string detail);

    [LoggerMessage(EventId = 501, Level = LogLevel.Information,
        Message = "Refused a WebSocket handshake with {Status} on route {Route} from {Client}: {Reason}{Detail}; {Suppressed} more refusals for this reason since the last such line were not logged")]
    public static partial void RefusedWithSuppressed(ILogger logger, int status, string route, IPAddress? client, string reason, string detail, int suppressed);

    [LoggerMessage(EventId = 502, Level = LogLevel.Information,
        Message = "Client addresses: X-Forwarded-For is believed from {Networks}")]
    public static partial void TrustedForwarders(ILogger logger, string networks);
}
