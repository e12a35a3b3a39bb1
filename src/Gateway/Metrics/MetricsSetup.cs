using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;

namespace Gateway.Metrics;

/// <summary>
/// What the gateway's one OpenTelemetry meter provider aggregates and how the Prometheus exporter behind
/// <c>/metrics</c> names it. The OTLP push (Telemetry/) adds its reader to the same provider.
/// </summary>
internal static class MetricsSetup
{
    /// <summary>The framework meters exported next to the gateway's own.</summary>
    public static readonly string[] FrameworkMeters =
    [
        "Microsoft.AspNetCore.Hosting",
        "Microsoft.AspNetCore.Server.Kestrel",
        "System.Net.Http",
        "System.Runtime",
    ];

    /// <summary>
    /// The runtime's instruments whose names end in <c>.count</c> but that are current values (gauges, up-down
    /// counters). Exported as they are they would read <c>dotnet_*_count</c>, a suffix the text format keeps for
    /// histograms and summaries (promtool rejects it), so a view gives them <c>_current</c> after it: the names
    /// /metrics has always had for the first three (README, "Metrics": the thread count's is new).
    /// </summary>
    public static readonly string[] CurrentValueCounts =
    [
        "dotnet.timer.count",
        "dotnet.assembly.count",
        "dotnet.process.cpu.count",
        "dotnet.thread_pool.thread.count",
    ];

    public static MeterProviderBuilder AddGatewayMeters(this MeterProviderBuilder metrics)
    {
        metrics.AddMeter(GatewayMeter.Name).AddMeter(FrameworkMeters);
        foreach (var name in CurrentValueCounts)
        {
            metrics.AddView(name, new MetricStreamConfiguration { Name = name + "_current" });
        }
        return metrics.AddPrometheusExporter(ConfigurePrometheus);
    }

    internal static void ConfigurePrometheus(PrometheusAspNetCoreOptions prometheus)
    {
        prometheus.ScrapeEndpointPath = "/metrics";
        // The series as operators know them: no otel_scope_name label on every one (each meter's instruments have
        // names of their own), and no target_info series (Prometheus's job and instance labels say who is speaking;
        // the OTLP push carries the resource).
        prometheus.ScopeInfoEnabled = false;
        prometheus.TargetInfoEnabled = false;
        // Every scrape collects, as before: a scrape right after an event sees it.
        prometheus.ScrapeResponseCacheDurationMilliseconds = 0;
    }
}
