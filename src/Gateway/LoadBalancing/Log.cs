namespace Gateway.LoadBalancing;

internal static partial class Log
{
    [LoggerMessage(EventId = 800, Level = LogLevel.Information, Message = "Cluster {Cluster}: consistent-hash ring built over {Destinations} destinations ({Points} points)")]
    public static partial void RingBuilt(ILogger logger, string cluster, int destinations, int points);

    [LoggerMessage(EventId = 801, Level = LogLevel.Warning, Message = "Cluster {Cluster}: HashBalanceFactor {Factor} is on: a new key (room) can be placed away from its hash's destination. This process keeps a room with live tunnels whole, but each replica judges the bound by its own counts, so with several replicas a room's members can land on different backends; set it to 0 where rooms live in each backend's memory")]
    public static partial void BoundOn(ILogger logger, string cluster, double factor);
}
