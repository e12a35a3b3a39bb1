using System.Net.Sockets;

namespace Gateway.Listeners.Takeover;

internal static partial class Log
{
    [LoggerMessage(EventId = 175, Level = LogLevel.Debug, Message = "A connection failed before it was accepted ({Error})")]
    public static partial void AcceptFailed(ILogger logger, SocketError error);

    [LoggerMessage(EventId = 176, Level = LogLevel.Information,
        Message = "SocketTakeover: the public listeners run on the gateway's own socket transport; ws tunnels on the lean HTTP/1.1 path relay the client's socket directly, wss tunnels go direct under TLS")]
    public static partial void Enabled(ILogger logger);
}
