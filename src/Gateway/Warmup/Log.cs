namespace Gateway.Warmup;

internal static partial class Log
{
    [LoggerMessage(EventId = 600, Level = LogLevel.Information, Message = "Warm-up: {Sessions} WebSocket sessions through {Targets} in {Seconds:0.0} s ({Failures} failed), {Methods} methods compiled")]
    public static partial void Finished(ILogger logger, int sessions, string targets, double seconds, int failures, int methods);

    [LoggerMessage(EventId = 601, Level = LogLevel.Information, Message = "Warm-up skipped: {Reason}")]
    public static partial void Skipped(ILogger logger, string reason);

    [LoggerMessage(EventId = 602, Level = LogLevel.Warning, Message = "Warm-up: {Target} gave up after {Failures} failed sessions in a row: {Error}")]
    public static partial void TargetFailed(ILogger logger, string target, int failures, string error);

    [LoggerMessage(EventId = 603, Level = LogLevel.Warning, Message = "Warm-up failed after {Seconds:0.0} s; the gateway serves anyway: {Error}")]
    public static partial void Failed(ILogger logger, double seconds, string error);

    [LoggerMessage(EventId = 604, Level = LogLevel.Debug, Message = "Warm-up round {Round}: {Sessions} sessions, {Methods} methods compiled during it")]
    public static partial void Round(ILogger logger, int round, int sessions, int methods);
}
