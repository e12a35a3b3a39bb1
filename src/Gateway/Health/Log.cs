namespace Gateway.Health;

internal static partial class Log
{
    [LoggerMessage(EventId = 850, Level = LogLevel.Warning, Message = "Cluster {Cluster}: destination {Destination} is out for {Period} (passive health: {Reason})")]
    public static partial void MarkedUnhealthy(ILogger logger, string cluster, string destination, string reason, TimeSpan period);
}
