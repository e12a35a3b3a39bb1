namespace Gateway.Identity;

internal static partial class Log
{
    [LoggerMessage(EventId = 1100, Level = LogLevel.Information, Message = "Fetched {Count} signing keys from {Url}")]
    public static partial void JwksFetched(ILogger logger, int count, string url);

    [LoggerMessage(EventId = 1101, Level = LogLevel.Warning,
        Message = "Could not fetch the signing keys from {Url}: {Problem}; the keys fetched before stay in use ({Count})")]
    public static partial void JwksFailed(ILogger logger, string url, string problem, int count);

    [LoggerMessage(EventId = 1102, Level = LogLevel.Error,
        Message = "WebSocket policy {Policy}: signing key file unusable, tokens it signed are refused: {Problem}")]
    public static partial void KeyFileFailed(ILogger logger, string policy, string problem);
}
