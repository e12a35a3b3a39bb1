namespace Gateway.Configuration;

/// <summary>
/// <c>Gateway:Telemetry</c>: what a fleet's collector receives besides the Prometheus scrape of each process. Off by
/// default; read at startup.
/// </summary>
internal sealed class TelemetryOptions
{
    public OtlpOptions Otlp { get; set; } = new();

    public TracingOptions Tracing { get; set; } = new();

    /// <summary>True when handshake spans are made and exported: tracing on, an OTLP endpoint, and traces chosen there.</summary>
    internal bool ExportsTraces => Tracing.Enabled && Otlp.IsEnabled && Otlp.Traces;

    /// <summary>True when the meters go to the OTLP endpoint too.</summary>
    internal bool ExportsMetrics => Otlp.IsEnabled && Otlp.Metrics;
}

/// <summary><c>Gateway:Telemetry:Otlp</c>: the OpenTelemetry Protocol exporter.</summary>
internal sealed class OtlpOptions
{
    public const string Grpc = "grpc";
    public const string HttpProtobuf = "http/protobuf";

    /// <summary>
    /// The collector's base URL (<c>http://collector:4318</c>), as <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> gives it: with
    /// http/protobuf the signal's path (<c>v1/metrics</c>, <c>v1/traces</c>) is added to it. Absent: no OTLP export.
    /// </summary>
    public string? Endpoint { get; set; }

    /// <summary><c>grpc</c> or <c>http/protobuf</c>. Absent: see <see cref="TelemetryValidation.ProtocolOf"/>.</summary>
    public string? Protocol { get; set; }

    /// <summary>How often the metrics are pushed (cumulative, like the Prometheus endpoint's).</summary>
    public TimeSpan ExportInterval { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Headers sent with every export (an <c>Authorization</c> a hosted collector asks for).</summary>
    public Dictionary<string, string> Headers { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Push the metrics (the same meters <c>/metrics</c> shows).</summary>
    public bool Metrics { get; set; } = true;

    /// <summary>Push the handshake spans, when <c>Tracing:Enabled</c> makes them.</summary>
    public bool Traces { get; set; } = true;

    internal bool IsEnabled => !string.IsNullOrWhiteSpace(Endpoint);
}

/// <summary><c>Gateway:Telemetry:Tracing</c>: one span per WebSocket handshake.</summary>
internal sealed class TracingOptions
{
    public bool Enabled { get; set; }

    /// <summary>
    /// The share of handshakes without a sampled parent that are recorded (0-1). A handshake whose <c>traceparent</c>
    /// says its caller sampled it is always recorded, one whose caller did not never is (ParentBased sampling).
    /// </summary>
    public double SampleRatio { get; set; } = 1.0;
}
