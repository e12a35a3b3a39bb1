using System.Diagnostics.Metrics;
using Gateway.Metrics;

namespace Gateway.Tests.Metrics;

public sealed class PrometheusTextTests
{
    [Theory]
    [InlineData("gateway.websocket.connections.active", "{connection}", false, false, "gateway_websocket_connections_active")]
    [InlineData("gateway.websocket.connections.opened", "{connection}", true, false, "gateway_websocket_connections_opened_total")]
    [InlineData("gateway.keepalive.ping_rtt", "s", false, true, "gateway_keepalive_ping_rtt_seconds")]
    [InlineData("gateway.relay.payload", "By", true, false, "gateway_relay_payload_bytes_total")]
    [InlineData("kestrel.active_connections", "{connection}", false, false, "kestrel_active_connections")]
    [InlineData("dotnet.assembly.count", "{assembly}", false, false, "dotnet_assembly_count_current")]
    [InlineData("http.server.request.duration", "s", false, true, "http_server_request_duration_seconds")]
    [InlineData("already_seconds", "s", false, false, "already_seconds")]
    public void Names_follow_the_opentelemetry_prometheus_conventions(string name, string unit, bool counter, bool histogram, string expected)
    {
        Assert.Equal(expected, PrometheusText.MetricName(name, unit, counter, histogram));
    }

    [Fact]
    public void Series_labelled_with_a_hidden_fragment_are_left_out()
    {
        using var setup = new MetricsSetup();
        using var meter = new Meter(GatewayMeter.Name);
        // With a description: gateways that other tests run meanwhile export this meter's instruments too, and a
        // family without HELP would fail their format checks.
        var counter = meter.CreateCounter<long>("gateway.test.hidden", "{thing}", "Hiding test");
        counter.Add(3, new KeyValuePair<string, object?>("route", "chat"));
        counter.Add(5, new KeyValuePair<string, object?>("route", "internal-zq9x"));

        Assert.Contains("route=\"internal-zq9x\"", setup.Exporter.Scrape());
        setup.Exporter.HideSeriesLabelled("zq9x");
        var text = setup.Exporter.Scrape();
        Assert.Contains("gateway_test_hidden_total{route=\"chat\"} 3", text);
        Assert.DoesNotContain("zq9x", text);
    }

    /// <summary>
    /// The exporter's own output, with label values that need escaping and every instrument kind, passes the strict
    /// format check (every machine), and the escaped values read back as written.
    /// </summary>
    [Fact]
    public void The_exporters_text_is_valid_and_label_values_survive_escaping()
    {
        using var setup = new MetricsSetup();
        using var meter = new Meter(GatewayMeter.Name);
        const string awkward = "a \"quoted\" \\ back\\slash\nand a new line";
        meter.CreateCounter<long>("gateway.test.escaped", "{thing}", "Escaping test").Add(2, new KeyValuePair<string, object?>("route", awkward));
        var histogram = meter.CreateHistogram<double>("gateway.test.latency", "s", "Histogram test");
        histogram.Record(0.003, new KeyValuePair<string, object?>("side", "client"));
        histogram.Record(7, new KeyValuePair<string, object?>("side", "client"));
        histogram.Record(0.2, new KeyValuePair<string, object?>("side", "backend"));
        meter.CreateUpDownCounter<long>("gateway.test.open", "{connection}", "Up-down counter test").Add(-1);
        meter.CreateObservableGauge("gateway.test.level", () => double.NaN, "1", "Gauge test");
        meter.CreateCounter<long>("gateway.test.items.count", "{item}", "A counter ending in count").Add(1);

        var text = setup.Exporter.Scrape();
        ExpositionFormat.AssertValid(text);

        var line = text.Split('\n').Single(l => l.StartsWith("gateway_test_escaped_total{", StringComparison.Ordinal));
        var sample = ExpositionLine.ParseSample(line, 1, []);
        Assert.NotNull(sample);
        Assert.Equal(awkward, sample.Label("route"));
        Assert.Equal(2, sample.Value);
        Assert.Contains("gateway_test_latency_seconds_bucket{side=\"client\",le=\"+Inf\"} 2", text);
        Assert.Contains("gateway_test_level NaN", text);
    }
}
