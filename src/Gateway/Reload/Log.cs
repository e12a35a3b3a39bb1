namespace Gateway.Reload;

/// <summary>The reload's messages; their event ids (100-105) kept from when they lived in Configuration.</summary>
internal static partial class Log
{
    [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "Configuration file {File} reloaded and applied: {Changes}")]
    public static partial void Reloaded(ILogger logger, string file, string changes);

    [LoggerMessage(EventId = 104, Level = LogLevel.Warning, Message = "Configuration file {File}: the Gateway section changed; applied now: {Applied}; needs a restart: {Restart}")]
    public static partial void GatewaySectionChanged(ILogger logger, string file, string applied, string restart);

    [LoggerMessage(EventId = 105, Level = LogLevel.Error, Message = "Configuration file {File}: the edit of the Gateway section cannot be used, the running one stays: {Reason}")]
    public static partial void GatewaySectionRefused(ILogger logger, string file, string reason);

    [LoggerMessage(EventId = 101, Level = LogLevel.Error, Message = "Configuration file {File} changed but cannot be used: nothing of the edit applied, the running configuration stays: {Reason}")]
    public static partial void ReloadFailed(ILogger logger, string file, string reason);
}
