namespace Gateway.Configuration;

internal static partial class Log
{
    [LoggerMessage(EventId = 102, Level = LogLevel.Warning, Message = "Configuration file {File} has no ReverseProxy:Routes: every request will get 404")]
    public static partial void NoRoutes(ILogger logger, string file);

    [LoggerMessage(EventId = 103, Level = LogLevel.Information, Message = "SIGHUP: reloading the configuration file {File} and the TLS certificate files")]
    public static partial void ReloadSignalled(ILogger logger, string file);
}
