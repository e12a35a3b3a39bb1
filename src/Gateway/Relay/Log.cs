namespace Gateway.Relay;

internal static partial class Log
{
    [LoggerMessage(EventId = 300, Level = LogLevel.Information, Message = "Route {Route}: the client stopped answering pings; closed its tunnel (client {ClientCode}, backend {BackendCode})")]
    public static partial void ClientReaped(ILogger logger, string route, ushort clientCode, ushort backendCode);

    [LoggerMessage(EventId = 301, Level = LogLevel.Warning, Message = "Route {Route}: the backend stopped answering pings; closed its tunnel (client {ClientCode})")]
    public static partial void BackendReaped(ILogger logger, string route, ushort clientCode);

    [LoggerMessage(EventId = 302, Level = LogLevel.Information, Message = "Route {Route}: the client broke a frame rule ({Reason}); closed with {ClientCode}, backend told {BackendCode}")]
    public static partial void ClientViolation(ILogger logger, string route, string reason, ushort clientCode, ushort backendCode);

    [LoggerMessage(EventId = 303, Level = LogLevel.Warning, Message = "Route {Route}: the backend broke a frame rule ({Reason}); closed with {BackendCode}, client told {ClientCode}")]
    public static partial void BackendViolation(ILogger logger, string route, string reason, ushort clientCode, ushort backendCode);
}
