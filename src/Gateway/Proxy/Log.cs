namespace Gateway.Proxy;

internal static partial class Log
{
    // The message only, no stack trace: a dead backend is an operational event, and YARP logs the exception itself.
    [LoggerMessage(EventId = 700, Level = LogLevel.Warning, Message = "Cluster {Cluster}: could not connect to destination {Destination}: {Error}; {Outcome}")]
    public static partial void ConnectFailed(ILogger logger, string cluster, string destination, string error, string outcome);
}
