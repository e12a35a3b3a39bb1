using OpenTelemetry;
using OpenTelemetry.Metrics;

namespace Gateway.Metrics;

/// <summary>
/// The OpenTelemetry meter provider that aggregates the gateway's own meter and the framework's (Kestrel, hosting,
/// HttpClient, runtime) for the Prometheus endpoint. Built by hand because OpenTelemetry.Extensions.Hosting is not
/// in the package mirror; disposed with the container.
/// </summary>
public sealed class MetricsSetup : IDisposable
{
    /// <summary>The framework meters exported next to the gateway's own.</summary>
    public static readonly string[] FrameworkMeters =
    [
        "Microsoft.AspNetCore.Hosting",
        "Microsoft.AspNetCore.Server.Kestrel",
        "System.Net.Http",
        "System.Runtime",
    ];

    private readonly MeterProvider _provider;

    public MetricsSetup()
    {
        Exporter = new PrometheusExporter();
        _provider = Sdk.CreateMeterProviderBuilder()
            .AddMeter(GatewayMeter.Name)
            .AddMeter(FrameworkMeters)
            .AddReader(new BaseExportingMetricReader(Exporter) { TemporalityPreference = MetricReaderTemporalityPreference.Cumulative })
            .Build();
    }

    public PrometheusExporter Exporter { get; }

    public void Dispose() => _provider.Dispose();
}

