using System.Globalization;
using System.Text;
using OpenTelemetry;
using OpenTelemetry.Metrics;

namespace Gateway.Metrics;

/// <summary>
/// A pull exporter that renders the OpenTelemetry SDK's cumulative metrics in the Prometheus text exposition format
/// (version 0.0.4), with the naming rules of OpenTelemetry.Exporter.Prometheus.AspNetCore: dots become underscores,
/// the unit becomes a suffix (<c>s</c> → <c>_seconds</c>, <c>By</c> → <c>_bytes</c>, <c>{…}</c> annotations dropped),
/// monotonic sums end in <c>_total</c>. Hand-written only because that package is not in the package mirror
/// (shared/platform-notes.md); swapping it in later means replacing this class and the /metrics handler.
/// </summary>
[ExportModes(ExportModes.Pull)]
public sealed class PrometheusExporter : BaseExporter<Metric>, IPullMetricExporter
{
    private readonly object _scrape = new();
    private StringBuilder? _output;
    private volatile string[] _hidden = [];

    /// <summary>
    /// Leaves out every series with a label value containing <paramref name="fragment"/>: the gateway's internal
    /// traffic (the startup warm-up) is not the operator's.
    /// </summary>
    public void HideSeriesLabelled(string fragment)
    {
        lock (_scrape)
        {
            _hidden = [.. _hidden, fragment];
        }
    }

    /// <summary>Set by the SDK's reader: asks it to collect and call <see cref="Export"/>.</summary>
    public Func<int, bool>? Collect { get; set; }

    /// <summary>Collects every instrument now and returns the exposition text.</summary>
    public string Scrape()
    {
        lock (_scrape)
        {
            _output = new StringBuilder(16 * 1024);
            try
            {
                if (Collect is not { } collect || !collect(5000))
                {
                    throw new InvalidOperationException("metrics collection failed");
                }
                return _output.ToString();
            }
            finally
            {
                _output = null;
            }
        }
    }

    public override ExportResult Export(in Batch<Metric> batch)
    {
        var output = _output;
        if (output is null)
        {
            return ExportResult.Failure;
        }
        foreach (var metric in batch)
        {
            PrometheusText.Write(output, metric, _hidden);
        }
        return ExportResult.Success;
    }
}

/// <summary>The text format's rules: names, types, labels, escaping.</summary>
internal static class PrometheusText
{
    public static void Write(StringBuilder output, Metric metric, string[]? hidden = null)
    {
        var type = metric.MetricType switch
        {
            MetricType.LongSum or MetricType.DoubleSum => "counter",
            MetricType.Histogram => "histogram",
            _ => "gauge", // gauges and non-monotonic sums (up-down counters)
        };
        var name = MetricName(metric.Name, metric.Unit, type == "counter", type == "histogram");
        if (!string.IsNullOrEmpty(metric.Description))
        {
            output.Append("# HELP ").Append(name).Append(' ').Append(EscapeHelp(metric.Description)).Append('\n');
        }
        output.Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');

        foreach (ref readonly var point in metric.GetMetricPoints())
        {
            if (hidden is { Length: > 0 } && IsHidden(point, hidden))
            {
                continue;
            }
            switch (metric.MetricType)
            {
                case MetricType.LongSum:
                case MetricType.LongSumNonMonotonic:
                    Sample(output, name, null, point, null, point.GetSumLong());
                    break;
                case MetricType.DoubleSum:
                case MetricType.DoubleSumNonMonotonic:
                    Sample(output, name, null, point, null, point.GetSumDouble());
                    break;
                case MetricType.LongGauge:
                    Sample(output, name, null, point, null, point.GetGaugeLastValueLong());
                    break;
                case MetricType.DoubleGauge:
                    Sample(output, name, null, point, null, point.GetGaugeLastValueDouble());
                    break;
                case MetricType.Histogram:
                    long cumulative = 0;
                    foreach (var bucket in point.GetHistogramBuckets())
                    {
                        cumulative += bucket.BucketCount;
                        var le = double.IsPositiveInfinity(bucket.ExplicitBound) ? "+Inf" : Number(bucket.ExplicitBound);
                        Sample(output, name, "_bucket", point, le, cumulative);
                    }
                    Sample(output, name, "_sum", point, null, point.GetHistogramSum());
                    Sample(output, name, "_count", point, null, point.GetHistogramCount());
                    break;
            }
        }
    }

    private static bool IsHidden(in MetricPoint point, string[] hidden)
    {
        foreach (var tag in point.Tags)
        {
            if (tag.Value is string value)
            {
                foreach (var fragment in hidden)
                {
                    if (value.Contains(fragment, StringComparison.Ordinal))
                    {
                        return true;
                    }
                }
            }
        }
        return false;
    }

    private static void Sample(StringBuilder output, string name, string? suffix, in MetricPoint point, string? le, double value)
    {
        output.Append(name).Append(suffix);
        var first = true;
        foreach (var tag in point.Tags)
        {
            output.Append(first ? '{' : ',');
            first = false;
            output.Append(LabelName(tag.Key)).Append("=\"").Append(EscapeLabel(Convert.ToString(tag.Value, CultureInfo.InvariantCulture))).Append('"');
        }
        if (le is not null)
        {
            output.Append(first ? '{' : ',').Append("le=\"").Append(le).Append('"');
            first = false;
        }
        if (!first)
        {
            output.Append('}');
        }
        output.Append(' ').Append(Number(value)).Append('\n');
    }

    internal static string MetricName(string name, string? unit, bool counter, bool histogram = false)
    {
        var builder = new StringBuilder(name.Length + 16);
        foreach (var c in name)
        {
            builder.Append(char.IsAsciiLetterOrDigit(c) || c is '_' or ':' ? c : '_');
        }
        var suffix = UnitSuffix(unit);
        if (suffix.Length > 0 && !builder.ToString().EndsWith("_" + suffix, StringComparison.Ordinal))
        {
            builder.Append('_').Append(suffix);
        }
        if (counter && !builder.ToString().EndsWith("_total", StringComparison.Ordinal))
        {
            builder.Append("_total");
        }
        var text = builder.ToString();
        // "_count", "_sum" and "_bucket" belong to histogram series; a gauge such as the runtime's dotnet.assembly.count
        // would read as one (promtool rejects it), so it says that it is a current value.
        if (!counter && !histogram && (text.EndsWith("_count", StringComparison.Ordinal) || text.EndsWith("_sum", StringComparison.Ordinal) || text.EndsWith("_bucket", StringComparison.Ordinal)))
        {
            text += "_current";
        }
        return text;
    }

    private static string UnitSuffix(string? unit) => unit switch
    {
        null or "" or "1" => string.Empty,
        "s" => "seconds",
        "ms" => "milliseconds",
        "By" => "bytes",
        "KiBy" => "kibibytes",
        "MiBy" => "mebibytes",
        _ when unit.StartsWith('{') => string.Empty, // annotations ("{connection}") are not units
        _ => new string(unit.Select(c => char.IsAsciiLetterOrDigit(c) ? c : '_').ToArray()),
    };

    private static string LabelName(string key)
    {
        var builder = new StringBuilder(key.Length);
        foreach (var c in key)
        {
            builder.Append(char.IsAsciiLetterOrDigit(c) || c == '_' ? c : '_');
        }
        if (builder.Length > 0 && char.IsAsciiDigit(builder[0]))
        {
            builder.Insert(0, '_');
        }
        return builder.ToString();
    }

    private static string EscapeLabel(string? value) =>
        (value ?? string.Empty).Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    private static string EscapeHelp(string value) =>
        value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    private static string Number(double value) =>
        double.IsPositiveInfinity(value) ? "+Inf" : double.IsNegativeInfinity(value) ? "-Inf" : double.IsNaN(value) ? "NaN" : value.ToString("R", CultureInfo.InvariantCulture);
}
