namespace Gateway.KeepAlive;

internal static partial class Log
{
    [LoggerMessage(EventId = 400, Level = LogLevel.Error, Message = "Keepalive sweep failed for a tunnel")]
    public static partial void SweepFailed(ILogger logger, Exception exception);
}
