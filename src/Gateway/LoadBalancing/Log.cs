namespace Gateway.LoadBalancing;

internal static partial class Log
{
    [LoggerMessage(EventId = 800, Level = LogLevel.Information, Message = "Cluster {Cluster}: consistent-hash ring built over {Destinations} destinations ({Points} points)")]
    public static partial void RingBuilt(ILogger logger, string cluster, int destinations, int points);
}
