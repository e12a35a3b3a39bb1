using System.Net.WebSockets;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Gateway.Telemetry;
using Gateway.Tests.Handshake;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Gateway.Tests.Telemetry;

/// <summary>
/// <c>Gateway:Telemetry:Otlp</c>: the meters that <c>/metrics</c> shows are pushed to a real OTLP receiver (OTLP/HTTP
/// protobuf and OTLP/gRPC), with the configured headers and the gateway's resource; Prometheus keeps working beside it.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed partial class OtlpMetricsTests : IDisposable
{
    private static readonly TimeSpan Within = TimeSpan.FromSeconds(20);

    private readonly string _directory = Directory.CreateTempSubdirectory("gateway-otlp-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task The_meters_reach_the_collector_over_otlp_http_and_prometheus_still_serves_them()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        await using var backend = await Backend.StartAsync("otlp-metrics");
        var route = TelemetryConfig.NewRoute("metrics");
        var otlp = TelemetryConfig.Otlp(receiver);
        // A value the exporter's own comma-separated Headers setting could not carry.
        otlp["Headers"] = new JsonObject { ["Authorization"] = "Bearer test-token, with a comma" };
        await using var gateway = await GatewayServer.StartAsync(TelemetryConfig.Build(route, "/echo", backend.Address, otlp));
        var instance = gateway.Services.GetRequiredService<TelemetryResource>().InstanceId;

        using (var socket = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/echo"))
        {
            await WebSocketClient.SendTextAsync(socket, "counted");
            await WebSocketClient.ReceiveAsync(socket);
            Assert.Equal(WebSocketCloseStatus.NormalClosure, await WebSocketClient.CloseAsync(socket));
        }

        // The gateway's instruments under their own names (OTLP carries no Prometheus suffixes), labelled with the
        // route; Kestrel's and the runtime's meters as /metrics has them; the resource that says who sent them.
        var export = await receiver.WaitForAsync("/v1/metrics",
            r => r.Contains("gateway.websocket.connections.opened") && r.Contains(route), Within);
        Assert.Equal("application/x-protobuf", export.ContentType);
        Assert.Equal("Bearer test-token, with a comma", export.Headers["Authorization"]);
        Assert.True(export.Contains("kestrel.active_connections"), "Kestrel's meter is missing");
        Assert.True(export.Contains("dotnet.gc.collections"), "the runtime's meter is missing");
        Assert.True(export.Contains("service.instance.id") && export.Contains(instance), "service.instance.id is missing");
        Assert.True(export.Contains("service.name") && export.Contains(TelemetryResource.ServiceName));
        Assert.Empty(receiver.At("/v1/traces"));

        // Pushed again and again, every ExportInterval (200 ms here).
        await Retry.Eventually(() => Assert.True(receiver.At("/v1/metrics").Count() >= 3), Within);

        var scrape = await MetricsScrape.FetchAsync(gateway);
        Assert.Equal(1, scrape.Value("gateway_websocket_connections_opened_total", ("route", route)));
    }

    [Fact]
    public async Task The_meters_reach_a_grpc_collector()
    {
        await using var receiver = await OtlpReceiver.StartAsync(grpc: true);
        await using var backend = new RawBackend();
        var route = TelemetryConfig.NewRoute("grpc");
        await using var gateway = await GatewayServer.StartAsync(
            TelemetryConfig.Build(route, "/ws", backend.Address, TelemetryConfig.Otlp(receiver, protocol: "grpc")));

        await using (var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/ws"))
        {
            var export = await receiver.WaitForAsync(OtlpReceiver.MetricsGrpcPath,
                r => r.Contains("gateway.websocket.connections.active") && r.Contains(route), Within);
            Assert.StartsWith("application/grpc", export.ContentType);
        }
        Assert.DoesNotContain(receiver.Received, r => r.Path.StartsWith("/v1/", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_collector_that_cannot_be_reached_is_logged_as_a_warning_without_disturbing_traffic()
    {
        using var dead = new RefusingPort();
        await using var backend = new RawBackend();
        var logs = new CapturingLoggerProvider();
        var route = TelemetryConfig.NewRoute("dead");
        var otlp = new JsonObject { ["Endpoint"] = dead.Address.ToString(), ["ExportInterval"] = "00:00:00.200" };
        await using var gateway = await GatewayServer.StartAsync(TelemetryConfig.Build(route, "/ws", backend.Address, otlp),
            services => services.AddSingleton<ILoggerProvider>(logs));

        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/ws");

        await Retry.Eventually(() => Assert.Contains(logs.Records, r =>
            r.Id.Id == 1001 && r.Level == LogLevel.Warning && r.Message.Contains(dead.Address.Authority, StringComparison.Ordinal)), Within);
        // The tunnel the gateway was serving meanwhile is unharmed.
        await client.SendAsync(RawFrames.Encode(RawFrame.Text, "still here"u8.ToArray(), mask: true));
        var echo = await client.ReceiveAsync(Within);
        Assert.Equal("still here", System.Text.Encoding.UTF8.GetString(echo!.Payload));
    }

    [GeneratedRegex(@"Listener admin bound to 127\.0\.0\.1:(\d+) ")]
    private static partial Regex AdminBound();

    [Fact]
    public async Task The_standard_resource_variables_override_the_service_name_in_a_real_process()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        await using var backend = new RawBackend();
        var route = TelemetryConfig.NewRoute("process");
        var config = TelemetryConfig.Build(route, "/ws", backend.Address, TelemetryConfig.Otlp(receiver));
        config["Gateway"]!["Warmup"] = new JsonObject { ["Enabled"] = false };
        config["Gateway"]!["DataProtection"] = new JsonObject { ["KeyDirectory"] = Path.Combine(_directory, "keys") };
        config["Logging"]!["LogLevel"]!["Gateway"] = "Information";
        var path = Path.Combine(_directory, "gateway.json");
        await File.WriteAllTextAsync(path, config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        var environment = new Dictionary<string, string>
        {
            ["OTEL_SERVICE_NAME"] = "gateway-canary",
            ["OTEL_RESOURCE_ATTRIBUTES"] = "deployment.environment.name=staging",
        };

        await using var process = GatewayProcess.Start(environment, "--config", path);
        var line = await process.WaitForLineAsync(new Regex($@"OTLP export to {Regex.Escape(receiver.Endpoint.ToString())} over http/protobuf: metrics every 0\.2 s; traces off; service\.instance\.id (\S+)"),
            TimeSpan.FromSeconds(60));
        var instance = line.Groups[1].Value;

        var export = await receiver.WaitForAsync("/v1/metrics", r => r.Contains("gateway-canary"), Within);
        Assert.True(export.Contains("deployment.environment.name") && export.Contains("staging"), "OTEL_RESOURCE_ATTRIBUTES was not applied");
        Assert.True(export.Contains(instance), "the instance id in the log is not the exported one");

        // Started (the exporter runs from the build on): SIGTERM now meets the host's shutdown, not a half-built process.
        await process.WaitForLineAsync(AdminBound(), TimeSpan.FromSeconds(60));
        process.Terminate();
        var exitCode = await process.WaitForExitAsync(TimeSpan.FromSeconds(30));
        Assert.True(exitCode == 0, $"exit code {exitCode}:\n{process.Output}");
    }
}
