namespace Gateway.Listeners.LeanHttp1;

internal static partial class Log
{
    [LoggerMessage(EventId = 170, Level = LogLevel.Error, Message = "A WebSocket handshake on the lean HTTP/1.1 path failed in the pipeline")]
    public static partial void PipelineFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 171, Level = LogLevel.Error,
        Message = "The answer to a WebSocket handshake carried an invalid response header ({Header}): answered 500 and closed the connection, as Kestrel would")]
    public static partial void InvalidResponseHeader(ILogger logger, string header);

    [LoggerMessage(EventId = 172, Level = LogLevel.Debug, Message = "The handshake from {Remote} took the lean HTTP/1.1 path")]
    public static partial void Taken(ILogger logger, System.Net.EndPoint? remote);
}
