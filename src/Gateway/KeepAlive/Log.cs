namespace Gateway.KeepAlive;

internal static partial class Log
{
    [LoggerMessage(EventId = 400, Level = LogLevel.Error, Message = "Keepalive sweep failed for a tunnel")]
    public static partial void SweepFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 401, Level = LogLevel.Information, Message = "Shutting down: closing {Count} open WebSocket tunnels with 1001")]
    public static partial void Draining(ILogger logger, int count);
}
