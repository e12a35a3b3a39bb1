using Gateway.Handshake;
using Gateway.Configuration;
using OpenTelemetry;
using OpenTelemetry.Exporter;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace Gateway.Telemetry;

/// <summary>
/// The push to the OTLP collector (<c>Gateway:Telemetry:Otlp</c>): a reader on the gateway's one meter provider, the
/// one behind /metrics (<see cref="AddMetricsReader"/>), and a tracer provider for the handshake spans
/// (<see cref="HandshakeTracing"/>). Both are disposed with the container, which flushes what is still queued.
/// </summary>
internal sealed class OtlpExport : IDisposable
{
    public const string MetricsPath = "v1/metrics";
    public const string TracesPath = "v1/traces";

    private readonly TracerProvider? _traces;

    public OtlpExport(GatewayOptions gateway, TelemetryResource resource, ILogger<OtlpExport> logger)
    {
        var telemetry = gateway.Telemetry;
        var otlp = telemetry.Otlp;
        if (!otlp.IsEnabled)
        {
            return;
        }
        if (telemetry.ExportsTraces)
        {
            var options = ExporterOptions(otlp, TracesPath);
            // Batched (the OTEL_BSP_* variables tune it); a span waits at most the schedule delay, 5 s by default.
            var batch = options.BatchExportProcessorOptions;
            _traces = Sdk.CreateTracerProviderBuilder()
                .SetResourceBuilder(resource.Builder())
                .AddSource(HandshakeTracing.SourceName)
                // A caller that sampled (or dropped) its trace decides for the handshake; the ratio decides the rest.
                .SetSampler(new ParentBasedSampler(new TraceIdRatioBasedSampler(telemetry.Tracing.SampleRatio)))
                .AddProcessor(new BatchActivityExportProcessor(new OtlpTraceExporter(options), batch.MaxQueueSize,
                    batch.ScheduledDelayMilliseconds, batch.ExporterTimeoutMilliseconds, batch.MaxExportBatchSize))
                .Build();
        }
        Log.Exporting(logger, otlp.Endpoint!, TelemetryValidation.ProtocolOf(otlp),
            telemetry.ExportsMetrics ? $"every {otlp.ExportInterval.TotalSeconds:0.###} s" : "off",
            telemetry.ExportsTraces ? $"one span per handshake, sample ratio {telemetry.Tracing.SampleRatio:0.###}" : "off",
            resource.InstanceId);
    }

    /// <summary>
    /// The OTLP push as a second reader of the gateway's meter provider: the same instruments and views as /metrics,
    /// each measurement aggregated once per reader, the gateway's resource on the provider.
    /// </summary>
    internal static void AddMetricsReader(IServiceCollection services, OtlpOptions otlp)
    {
        services.ConfigureOpenTelemetryMeterProvider((provider, metrics) => metrics.AddReader(
            new PeriodicExportingMetricReader(new OtlpMetricExporter(ExporterOptions(otlp, MetricsPath)), (int)otlp.ExportInterval.TotalMilliseconds)
            {
                // As the Prometheus endpoint: counters keep counting, and a lost push loses no increments.
                TemporalityPreference = MetricReaderTemporalityPreference.Cumulative,
            }));
    }

    /// <summary>
    /// The exporter's options for one signal. With gRPC the exporter adds the service path itself; with http/protobuf
    /// an endpoint set in code is used as it is, so the signal's path is added here to the base URL, as the OTLP
    /// specification says of <c>OTEL_EXPORTER_OTLP_ENDPOINT</c>. Everything not configured here (timeout, compression,
    /// headers when the file sets none) comes from the standard <c>OTEL_EXPORTER_OTLP_*</c> variables.
    /// </summary>
    internal static OtlpExporterOptions ExporterOptions(OtlpOptions otlp, string signalPath)
    {
        var options = new OtlpExporterOptions();
        var endpoint = new Uri(otlp.Endpoint!);
        if (TelemetryValidation.ProtocolOf(otlp) == OtlpOptions.Grpc)
        {
            options.Protocol = OtlpExportProtocol.Grpc;
            options.Endpoint = endpoint;
        }
        else
        {
            options.Protocol = OtlpExportProtocol.HttpProtobuf;
            options.Endpoint = SignalEndpoint(endpoint, signalPath);
        }
        if (otlp.Headers.Count > 0)
        {
            // On the exporter's own client (its timeout, size limit and OTEL_EXPORTER_OTLP_CERTIFICATE included) rather than
            // in its Headers string, whose comma-separated, percent-decoded form cannot carry every value.
            var headers = otlp.Headers.ToArray();
            var create = options.HttpClientFactory;
            options.HttpClientFactory = () =>
            {
                var client = create();
                foreach (var (name, value) in headers)
                {
                    client.DefaultRequestHeaders.TryAddWithoutValidation(name, value);
                }
                return client;
            };
        }
        return options;
    }

    /// <summary>The base URL with the signal's path after its own (<c>http://c:4318/otlp</c> → <c>.../otlp/v1/traces</c>).</summary>
    internal static Uri SignalEndpoint(Uri endpoint, string signalPath)
    {
        var text = endpoint.AbsoluteUri;
        return new Uri(text.EndsWith('/') ? text + signalPath : text + "/" + signalPath);
    }

    public void Dispose()
    {
        _traces?.Dispose();
    }
}
