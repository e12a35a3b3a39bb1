using Gateway.Configuration;
using Gateway.Telemetry;
using Gateway.Tests.Handshake;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace Gateway.Tests.Telemetry;

/// <summary><c>Gateway:Telemetry</c> at load: defaults, the protocol for the endpoint's form, and one error per mistake naming its key.</summary>
public sealed class TelemetryOptionsTests
{
    private static GatewayOptions Load(params (string Key, string Value)[] values) => InMemoryGatewayOptions.Load(values);

    [Fact]
    public void Everything_is_off_by_default()
    {
        var telemetry = Load().Telemetry;
        Assert.Null(telemetry.Otlp.Endpoint);
        Assert.False(telemetry.ExportsMetrics);
        Assert.False(telemetry.ExportsTraces);
        Assert.False(telemetry.Tracing.Enabled);
        Assert.Equal(1.0, telemetry.Tracing.SampleRatio);
        Assert.Equal(TimeSpan.FromSeconds(15), telemetry.Otlp.ExportInterval);
        Assert.True(telemetry.Otlp.Metrics);
        Assert.True(telemetry.Otlp.Traces);
    }

    [Fact]
    public void An_endpoint_alone_exports_the_metrics_and_tracing_adds_the_spans()
    {
        var metricsOnly = Load(("Gateway:Telemetry:Otlp:Endpoint", "http://collector:4318")).Telemetry;
        Assert.True(metricsOnly.ExportsMetrics);
        Assert.False(metricsOnly.ExportsTraces);

        var both = Load(("Gateway:Telemetry:Otlp:Endpoint", "http://collector:4318"), ("Gateway:Telemetry:Tracing:Enabled", "true"),
            ("Gateway:Telemetry:Tracing:SampleRatio", "0.25"), ("Gateway:Telemetry:Otlp:Headers:Authorization", "Bearer x")).Telemetry;
        Assert.True(both.ExportsMetrics);
        Assert.True(both.ExportsTraces);
        Assert.Equal(0.25, both.Tracing.SampleRatio);
        Assert.Equal("Bearer x", both.Otlp.Headers["authorization"]);

        var tracesOnly = Load(("Gateway:Telemetry:Otlp:Endpoint", "http://collector:4318"), ("Gateway:Telemetry:Otlp:Metrics", "false"),
            ("Gateway:Telemetry:Tracing:Enabled", "true")).Telemetry;
        Assert.False(tracesOnly.ExportsMetrics);
        Assert.True(tracesOnly.ExportsTraces);
    }

    [Theory]
    [InlineData("http://collector:4317", null, "grpc")]
    [InlineData("https://collector.example.com:4317/", null, "grpc")]
    [InlineData("http://collector:4318", null, "http/protobuf")]
    [InlineData("https://otlp.example.com/", null, "http/protobuf")]
    [InlineData("http://collector:4317", "http/protobuf", "http/protobuf")]
    [InlineData("http://collector:4318", "GRPC", "grpc")]
    public void The_protocol_is_the_configured_one_else_grpc_on_port_4317_else_http_protobuf(string endpoint, string? protocol, string expected)
    {
        var values = new List<(string, string)> { ("Gateway:Telemetry:Otlp:Endpoint", endpoint) };
        if (protocol is not null)
        {
            values.Add(("Gateway:Telemetry:Otlp:Protocol", protocol));
        }
        Assert.Equal(expected, TelemetryValidation.ProtocolOf(Load(values.ToArray()).Telemetry.Otlp));
    }

    [Theory]
    [InlineData("http://collector:4318", "http://collector:4318/v1/metrics")]
    [InlineData("http://collector:4318/", "http://collector:4318/v1/metrics")]
    [InlineData("https://otlp.example.com/tenant/a", "https://otlp.example.com/tenant/a/v1/metrics")]
    [InlineData("https://otlp.example.com/tenant/a/", "https://otlp.example.com/tenant/a/v1/metrics")]
    public void With_http_protobuf_the_signal_path_follows_the_base_path(string endpoint, string expected)
    {
        var otlp = Load(("Gateway:Telemetry:Otlp:Endpoint", endpoint), ("Gateway:Telemetry:Otlp:Protocol", "http/protobuf")).Telemetry.Otlp;
        Assert.Equal(new Uri(expected), OtlpExport.ExporterOptions(otlp, OtlpExport.MetricsPath).Endpoint);
    }

    [Fact]
    public void With_grpc_the_endpoint_is_given_as_it_is()
    {
        var otlp = Load(("Gateway:Telemetry:Otlp:Endpoint", "http://collector:4317")).Telemetry.Otlp;
        var options = OtlpExport.ExporterOptions(otlp, OtlpExport.MetricsPath);
        Assert.Equal(new Uri("http://collector:4317/"), options.Endpoint);
        Assert.Equal(OpenTelemetry.Exporter.OtlpExportProtocol.Grpc, options.Protocol);
    }

    [Theory]
    [InlineData("Gateway:Telemetry:Otlp:Endpoint", "collector:4318", "Gateway:Telemetry:Otlp:Endpoint", "not an absolute http:// or https:// URL")]
    [InlineData("Gateway:Telemetry:Otlp:Endpoint", "/v1/metrics", "Gateway:Telemetry:Otlp:Endpoint", "not an absolute")]
    [InlineData("Gateway:Telemetry:Otlp:Endpoint", "ftp://collector:4318", "Gateway:Telemetry:Otlp:Endpoint", "not an absolute")]
    [InlineData("Gateway:Telemetry:Otlp:Endpoint", "http://collector:4318/?tenant=a", "Gateway:Telemetry:Otlp:Endpoint", "query")]
    [InlineData("Gateway:Telemetry:Otlp:Protocol", "udp", "Gateway:Telemetry:Otlp:Protocol", "'udp' is not grpc or http/protobuf")]
    [InlineData("Gateway:Telemetry:Otlp:Protocol", "http/json", "Gateway:Telemetry:Otlp:Protocol", "not supported")]
    [InlineData("Gateway:Telemetry:Otlp:ExportInterval", "00:00:00", "Gateway:Telemetry:Otlp:ExportInterval", "positive")]
    [InlineData("Gateway:Telemetry:Otlp:ExportInterval", "-00:00:01", "Gateway:Telemetry:Otlp:ExportInterval", "positive")]
    [InlineData("Gateway:Telemetry:Otlp:ExportInterval", "soon", "Gateway:Telemetry:Otlp:ExportInterval", "duration")]
    [InlineData("Gateway:Telemetry:Otlp:Headers:Bad Name", "x", "Gateway:Telemetry:Otlp:Headers:Bad Name", "header name")]
    [InlineData("Gateway:Telemetry:Otlp:Metrics", "sometimes", "Gateway:Telemetry:Otlp:Metrics", "true or false")]
    [InlineData("Gateway:Telemetry:Otlp:Endpiont", "http://collector:4318", "Gateway:Telemetry:Otlp:Endpiont", "unknown key")]
    [InlineData("Gateway:Telemetry:Tracing:SampleRatio", "1.5", "Gateway:Telemetry:Tracing:SampleRatio", "between 0 and 1")]
    [InlineData("Gateway:Telemetry:Tracing:SampleRatio", "-0.1", "Gateway:Telemetry:Tracing:SampleRatio", "between 0 and 1")]
    [InlineData("Gateway:Telemetry:Tracing:Enabeld", "true", "Gateway:Telemetry:Tracing:Enabeld", "unknown key")]
    public void A_bad_value_is_reported_with_its_key(string key, string value, string reportedKey, string problem)
    {
        var values = new List<(string, string)> { (key, value) };
        if (!key.EndsWith(":Endpoint", StringComparison.Ordinal) && !key.EndsWith(":Endpiont", StringComparison.Ordinal))
        {
            values.Add(("Gateway:Telemetry:Otlp:Endpoint", "http://collector:4318"));
        }
        var error = Assert.Throws<GatewayConfigurationException>(() => Load(values.ToArray()));
        Assert.Equal(reportedKey, error.Key);
        Assert.Contains(problem, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Tracing_without_an_otlp_endpoint_is_refused_since_the_spans_would_go_nowhere()
    {
        var error = Assert.Throws<GatewayConfigurationException>(() => Load(("Gateway:Telemetry:Tracing:Enabled", "true")));
        Assert.Equal("Gateway:Telemetry:Tracing:Enabled", error.Key);
        Assert.Contains("Gateway:Telemetry:Otlp:Endpoint", error.Message, StringComparison.Ordinal);

        error = Assert.Throws<GatewayConfigurationException>(() => Load(("Gateway:Telemetry:Tracing:Enabled", "true"),
            ("Gateway:Telemetry:Otlp:Endpoint", "http://collector:4318"), ("Gateway:Telemetry:Otlp:Traces", "false")));
        Assert.Equal("Gateway:Telemetry:Otlp:Traces", error.Key);
    }

    [Fact]
    public void Export_problems_are_logged_at_most_once_a_minute_with_the_number_left_out()
    {
        var logs = new CapturingLoggerProvider();
        using var factory = LoggerFactory.Create(builder => builder.AddProvider(logs));
        var time = new FakeTimeProvider();
        using var problems = new OtlpExportProblems(factory.CreateLogger<OtlpExportProblems>(), time);

        problems.Report("collector refused");
        problems.Report("collector refused");
        problems.Report("collector refused");
        time.Advance(OtlpExportProblems.Interval - TimeSpan.FromSeconds(1));
        problems.Report("collector refused");
        Assert.Single(logs.Records);
        time.Advance(TimeSpan.FromSeconds(1));
        problems.Report("collector timed out");

        Assert.Collection(logs.Records,
            first => Assert.Equal("OTLP export problem: collector refused (0 more since the last such line)", first.Message),
            second => Assert.Equal("OTLP export problem: collector timed out (3 more since the last such line)", second.Message));
        Assert.All(logs.Records, r => Assert.Equal((LogLevel.Warning, 1001), (r.Level, r.Id.Id)));
    }
}
