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
        var counter = meter.CreateCounter<long>("gateway.test.hidden", "{thing}");
        counter.Add(3, new KeyValuePair<string, object?>("route", "chat"));
        counter.Add(5, new KeyValuePair<string, object?>("route", "internal-zq9x"));

        Assert.Contains("route=\"internal-zq9x\"", setup.Exporter.Scrape());
        setup.Exporter.HideSeriesLabelled("zq9x");
        var text = setup.Exporter.Scrape();
        Assert.Contains("gateway_test_hidden_total{route=\"chat\"} 3", text);
        Assert.DoesNotContain("zq9x", text);
    }
}
