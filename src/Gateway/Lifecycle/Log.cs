namespace Gateway.Lifecycle;

internal static partial class Log
{
    [LoggerMessage(EventId = 900, Level = LogLevel.Information, Message = "Shutting down: not ready; {Count} open tunnels; listeners stop in {DelaySeconds} s, tunnels then close over {PeriodSeconds} s")]
    public static partial void DrainStarted(ILogger logger, int count, double delaySeconds, double periodSeconds);

    [LoggerMessage(EventId = 901, Level = LogLevel.Information, Message = "Shutting down: listeners stopped; closing {Count} open WebSocket tunnels with 1001")]
    public static partial void ClosingTunnels(ILogger logger, int count);

    [LoggerMessage(EventId = 902, Level = LogLevel.Information, Message = "Shutting down: every tunnel has closed")]
    public static partial void DrainFinished(ILogger logger);

    [LoggerMessage(EventId = 903, Level = LogLevel.Warning, Message = "Shutting down: ShutdownTimeout reached with {Count} tunnels still open; they are cut")]
    public static partial void DrainCutShort(ILogger logger, int count);

    [LoggerMessage(EventId = 904, Level = LogLevel.Information, Message = "Reload removed destinations: closing their {Count} open tunnels with 1012 over {PeriodSeconds} s")]
    public static partial void RemovedDestinationTunnels(ILogger logger, int count, double periodSeconds);

    [LoggerMessage(EventId = 905, Level = LogLevel.Error, Message = "Closing the tunnels of removed destinations failed")]
    public static partial void RemovedDestinationDrainFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 906, Level = LogLevel.Information, Message = "Admin: draining destination {Cluster}/{Destination}: no new handshakes; its {Count} open tunnels close with 1012 over {PeriodSeconds} s")]
    public static partial void DestinationDrainStarted(ILogger logger, string cluster, string destination, int count, double periodSeconds);

    [LoggerMessage(EventId = 907, Level = LogLevel.Information, Message = "Destination {Cluster}/{Destination} is no longer drained: it takes new handshakes")]
    public static partial void DestinationDrainEnded(ILogger logger, string cluster, string destination);

    [LoggerMessage(EventId = 908, Level = LogLevel.Information, Message = "Reload restored destination {Cluster}/{Destination}: its tunnels not yet closed stay open")]
    public static partial void RemovedDestinationRestored(ILogger logger, string cluster, string destination);
}
