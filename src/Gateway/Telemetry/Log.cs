namespace Gateway.Telemetry;

internal static partial class Log
{
    [LoggerMessage(EventId = 1000, Level = LogLevel.Information,
        Message = "OTLP export to {Endpoint} over {Protocol}: metrics {Metrics}; traces {Traces}; service.instance.id {InstanceId}")]
    public static partial void Exporting(ILogger logger, string endpoint, string protocol, string metrics, string traces, string instanceId);

    // Throttled by OtlpExportProblems: the exporter reports each failed push, and a collector that is down fails them all.
    [LoggerMessage(EventId = 1001, Level = LogLevel.Warning,
        Message = "OTLP export problem: {Problem} ({Suppressed} more since the last such line)")]
    public static partial void ExportProblem(ILogger logger, string problem, int suppressed);
}
