using System.Diagnostics.Tracing;
using System.Globalization;

namespace Gateway.Telemetry;

/// <summary>
/// Brings the OTLP exporter's warnings and errors (a collector that cannot be reached, refuses, times out) into the
/// gateway's log, which the exporter only reports on its EventSource. At most one line per <see cref="Interval"/>, with
/// the number left out: a collector that is down fails every push. Exists only while something is exported.
/// </summary>
internal sealed class OtlpExportProblems : EventListener
{
    public const string ExporterEventSource = "OpenTelemetry-Exporter-OpenTelemetryProtocol";

    private const int MaxProblemLength = 500;

    internal static readonly TimeSpan Interval = TimeSpan.FromMinutes(1);

    // C# runs field initializers before the base constructor, which may already call OnEventSourceCreated and so
    // deliver events; the constructor's assignments come after, so events are ignored until the logger is set.
    private readonly object _gate = new();
    private readonly TimeProvider _time;
    private volatile ILogger? _logger;
    private long _nextLogAt;
    private int _suppressed;

    public OtlpExportProblems(ILogger<OtlpExportProblems> logger, TimeProvider time)
    {
        _time = time;
        _logger = logger;
    }

    protected override void OnEventSourceCreated(EventSource eventSource)
    {
        if (eventSource.Name == ExporterEventSource)
        {
            EnableEvents(eventSource, EventLevel.Warning);
        }
    }

    protected override void OnEventWritten(EventWrittenEventArgs eventData)
    {
        if (eventData.Level <= EventLevel.Warning && eventData.Level != EventLevel.LogAlways)
        {
            Report(Describe(eventData));
        }
    }

    /// <summary>Logs <paramref name="problem"/> unless a line was written within the interval; then it is only counted.</summary>
    internal void Report(string problem)
    {
        if (_logger is not { } logger)
        {
            return;
        }
        var now = _time.GetTimestamp();
        int suppressed;
        lock (_gate)
        {
            if (now < _nextLogAt)
            {
                _suppressed++;
                return;
            }
            _nextLogAt = now + (long)(Interval.TotalSeconds * _time.TimestampFrequency);
            suppressed = _suppressed;
            _suppressed = 0;
        }
        Log.ExportProblem(logger, problem, suppressed);
    }

    private static string Describe(EventWrittenEventArgs eventData)
    {
        string text;
        try
        {
            text = eventData.Message is { } format && eventData.Payload is { } payload
                ? string.Format(CultureInfo.InvariantCulture, format, payload.ToArray())
                : eventData.EventName ?? eventData.EventId.ToString(CultureInfo.InvariantCulture);
        }
        catch (FormatException)
        {
            text = eventData.EventName ?? eventData.EventId.ToString(CultureInfo.InvariantCulture);
        }
        // The payload may hold a whole exception with its stack trace: the first line says what happened.
        var newline = text.IndexOf('\n');
        if (newline >= 0)
        {
            text = text[..newline].TrimEnd('\r');
        }
        return text.Length > MaxProblemLength ? text[..MaxProblemLength] + "..." : text;
    }
}
