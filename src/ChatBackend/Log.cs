using System.Net.WebSockets;

namespace ChatBackend;

/// <summary>Source-generated log messages: no boxing or formatting cost when the level is disabled.</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Backend {Instance}: member joined room {Room} (subprotocol {Subprotocol}, {Members} member(s))")]
    public static partial void MemberJoined(ILogger logger, string instance, string room, string subprotocol, int members);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "Backend {Instance}: member left room {Room} (close status {CloseStatus} '{CloseDescription}', state {State})")]
    public static partial void MemberLeft(ILogger logger, string instance, string room, WebSocketCloseStatus? closeStatus, string? closeDescription, WebSocketState state);

    [LoggerMessage(EventId = 3, Level = LogLevel.Warning, Message = "Backend {Instance}: member of room {Room} is too slow; closing it")]
    public static partial void MemberTooSlow(ILogger logger, string instance, string room);

    [LoggerMessage(EventId = 4, Level = LogLevel.Warning, Message = "Backend {Instance}: message over {Limit} bytes on {Endpoint}; closing with 1009")]
    public static partial void MessageTooBig(ILogger logger, string instance, string endpoint, int limit);

    [LoggerMessage(EventId = 10, Level = LogLevel.Information, Message = "Backend {Instance}: echo connected (subprotocol {Subprotocol})")]
    public static partial void EchoConnected(ILogger logger, string instance, string subprotocol);

    [LoggerMessage(EventId = 11, Level = LogLevel.Information, Message = "Backend {Instance}: echo disconnected (close status {CloseStatus} '{CloseDescription}', state {State})")]
    public static partial void EchoDisconnected(ILogger logger, string instance, WebSocketCloseStatus? closeStatus, string? closeDescription, WebSocketState state);

    [LoggerMessage(EventId = 12, Level = LogLevel.Debug, Message = "Backend {Instance}: connection on {Endpoint} ended without a close handshake")]
    public static partial void ConnectionLost(ILogger logger, string instance, string endpoint, Exception exception);
}
