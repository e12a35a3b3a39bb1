using System.Diagnostics.Metrics;
using System.Net;
using Gateway.Metrics;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Tests.Metrics;

/// <summary>
/// /metrics as OpenTelemetry.Exporter.Prometheus.AspNetCore serves it on a real gateway: the series operators already
/// use keep their names, nothing the exporter would add by default (scope label, target_info) appears, and the text
/// passes the strict format check. Serial because it reads counters from /metrics (see <see cref="SerialCollection"/>).
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class PrometheusExporterTests
{
    /// <summary>
    /// Every family of a scrape after one tunnel and one refusal, with its type, as the hand-written exporter this one
    /// replaced served them, but for the two renames README.md lists (the thread pool's thread count and queue length,
    /// up-down counters it typed as counters).
    /// </summary>
    public static readonly string[] Families =
    [
        "kestrel_active_connections gauge", "kestrel_connection_duration_seconds histogram", "kestrel_queued_connections gauge",
        "kestrel_upgraded_connections gauge", "http_server_active_requests gauge", "http_server_request_duration_seconds histogram",
        "dotnet_gc_collections_total counter", "dotnet_process_memory_working_set_bytes gauge",
        "dotnet_gc_heap_total_allocated_bytes_total counter", "dotnet_gc_last_collection_memory_committed_size_bytes gauge",
        "dotnet_gc_last_collection_heap_size_bytes gauge", "dotnet_gc_last_collection_heap_fragmentation_size_bytes gauge",
        "dotnet_gc_pause_time_seconds_total counter", "dotnet_jit_compiled_il_size_bytes_total counter", "dotnet_jit_compiled_methods_total counter",
        "dotnet_jit_compilation_time_seconds_total counter", "dotnet_monitor_lock_contentions_total counter",
        "dotnet_thread_pool_thread_count_current gauge", "dotnet_thread_pool_work_item_count_total counter", "dotnet_thread_pool_queue_length gauge",
        "dotnet_timer_count_current gauge", "dotnet_assembly_count_current gauge", "dotnet_exceptions_total counter",
        "dotnet_process_cpu_count_current gauge", "dotnet_process_cpu_time_seconds_total counter",
        "gateway_websocket_connections_active gauge", "gateway_websocket_connections_opened_total counter",
        "gateway_websocket_connections_closed_total counter", "gateway_websocket_handshake_duration_seconds histogram",
        "gateway_websocket_connection_duration_seconds histogram", "gateway_relay_messages_total counter", "gateway_relay_payload_bytes_total counter",
        "gateway_destination_health gauge", "gateway_tls_certificate_expiry_timestamp_seconds gauge", "gateway_handshake_refused_total counter",
        "http_client_active_requests gauge", "http_client_request_duration_seconds histogram", "http_client_open_connections gauge",
        "http_client_connection_duration_seconds histogram", "http_client_request_time_in_queue_seconds histogram",
    ];

    [Fact]
    public async Task The_series_keep_the_names_operators_use_without_scope_labels_or_target_info()
    {
        await using var backend = await Backend.StartAsync("b1");
        await using var gateway = await GatewayServer.StartAsync(GatewayServer.Config(
            GatewayServer.Proxy([("chat", "/chat", "chat")], [("chat", [backend])])));
        using (var socket = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/chat/lobby", cookies: new CookieContainer()))
        {
            Assert.Equal("b1", await WebSocketClient.ReceiveWelcomeBackendAsync(socket));
            await WebSocketClient.CloseAsync(socket);
        }
        await Assert.ThrowsAsync<InvalidOperationException>(() =>
            RawWebSocketClient.ConnectAsync(gateway.Ws, "/chat/lobby", "Origin: https://evil.example"));

        var scrape = await Retry.Eventually(async () =>
        {
            var s = await MetricsScrape.FetchAsync(gateway);
            Assert.Equal(1, s.Value("gateway_websocket_connections_closed_total", ("route", "chat")));
            return s;
        }, TimeSpan.FromSeconds(10));
        var types = scrape.Text.Split('\n').Where(l => l.StartsWith("# TYPE ", StringComparison.Ordinal)).Select(l => l["# TYPE ".Length..]).ToHashSet();
        var missing = Families.Where(f => !types.Contains(f)).ToArray();
        Assert.True(missing.Length == 0, $"missing or retyped: {string.Join(", ", missing)}\nserved: {string.Join(", ", types)}");
        Assert.DoesNotContain("otel_scope", scrape.Text);
        Assert.DoesNotContain("target_info", scrape.Text);
        Assert.Equal(1, scrape.Value("gateway_handshake_refused_total", ("reason", "origin"), ("route", "chat")));
        ExpositionFormat.AssertValid(scrape.Text);
    }

    /// <summary>
    /// Instruments of every kind on the gateway's own meter, with label values that need escaping: the exporter's
    /// text passes the strict format check, and the escaped values read back as written.
    /// </summary>
    [Fact]
    public async Task The_exporters_text_is_valid_and_label_values_survive_escaping()
    {
        await using var gateway = await GatewayServer.StartAsync(GatewayServer.Config(GatewayServer.Proxy([], [])));
        var meter = gateway.Services.GetRequiredService<GatewayMeter>().Meter;
        const string awkward = "a \"quoted\" \\ back\\slash\nand a new line";
        meter.CreateCounter<long>("gateway.test.escaped", "{thing}", "Escaping test").Add(2, new KeyValuePair<string, object?>("route", awkward));
        var histogram = meter.CreateHistogram<double>("gateway.test.latency", "s", "Histogram test");
        histogram.Record(0.003, new KeyValuePair<string, object?>("side", "client"));
        histogram.Record(7, new KeyValuePair<string, object?>("side", "client"));
        histogram.Record(0.2, new KeyValuePair<string, object?>("side", "backend"));
        meter.CreateUpDownCounter<long>("gateway.test.open", "{connection}", "Up-down counter test").Add(-1);
        meter.CreateObservableGauge("gateway.test.level", () => double.NaN, "1", "Gauge test");

        var scrape = await MetricsScrape.FetchAsync(gateway);
        var text = scrape.Text;
        ExpositionFormat.AssertValid(text);

        var line = text.Split('\n').Single(l => l.StartsWith("gateway_test_escaped_total{", StringComparison.Ordinal));
        var sample = ExpositionLine.ParseSample(line, 1, []);
        Assert.NotNull(sample);
        Assert.Equal(awkward, sample.Label("route"));
        Assert.Equal(2, sample.Value);
        Assert.Contains("gateway_test_latency_seconds_bucket{side=\"client\",le=\"+Inf\"} 2", text);
        Assert.Equal(-1, scrape.Value("gateway_test_open"));
        Assert.True(double.IsNaN(scrape.Value("gateway_test_level")));
    }
}
