using System.Diagnostics;
using System.Net;
using System.Net.WebSockets;
using System.Text.Json.Nodes;
using Gateway.Tests.Infrastructure;
using Gateway.Warmup;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Tests.Warmup;

/// <summary>The startup warm-up on a real gateway: real listeners, real TLS, a real backend it must not touch.</summary>
[Collection(SerialCollection.Name)]
public sealed class WarmupTests
{
    private static JsonObject Config(Backend backend, string maxDuration)
    {
        var config = GatewayServer.Config(GatewayServer.Proxy([("chat", "/chat", "chat")], [("chat", [backend])]));
        config["Gateway"]!["Warmup"] = new JsonObject { ["Enabled"] = true, ["MaxDuration"] = maxDuration };
        // A default policy the warm-up's own handshakes (loopback, no Origin, hundreds a second) would all fail.
        config["Gateway"]!["WebSocketPolicies"] = new JsonObject
        {
            ["default"] = new JsonObject
            {
                ["Handshake"] = new JsonObject { ["AllowedOrigins"] = new JsonArray("https://chat.example"), ["AllowMissingOrigin"] = false },
                ["Limits"] = new JsonObject { ["HandshakesPerMinutePerClient"] = 1 },
            },
        };
        return config;
    }

    [Fact]
    public async Task Readiness_waits_for_sessions_through_every_listener_and_leaves_no_trace()
    {
        await using var backend = await Backend.StartAsync("b1");
        await using var gateway = await GatewayServer.StartAsync(Config(backend, "00:00:04"));
        var warmup = gateway.Services.GetRequiredService<WarmupService>();
        using var http = new HttpClient();

        var early = await http.GetAsync(new Uri(gateway.Admin, "/readyz"));
        Assert.False(warmup.Completion.IsCompleted, "the warm-up takes several rounds; it cannot have finished yet");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, early.StatusCode);

        await warmup.Completion.WaitAsync(TimeSpan.FromSeconds(15));
        var report = warmup.Report!;
        Assert.Equal(["ws (HTTP/1.1)", "wss (HTTP/1.1)", "wss (HTTP/2)"], report.Targets);
        Assert.Equal(0, report.Failures);
        Assert.Empty(report.GaveUp);
        Assert.True(report.Sessions >= 64, $"{report.Sessions} sessions");
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync(new Uri(gateway.Admin, "/readyz"))).StatusCode);

        // The route is gone with the warm-up: its path is an ordinary unknown path now.
        var route = gateway.Services.GetRequiredService<WarmupRoute>();
        using (var probe = new ClientWebSocket())
        {
            probe.Options.CollectHttpResponseDetails = true;
            await Assert.ThrowsAsync<WebSocketException>(() => probe.ConnectAsync(new Uri(gateway.Ws, route.Path.TrimStart('/')), CancellationToken.None));
            Assert.Equal(HttpStatusCode.NotFound, probe.HttpStatusCode);
        }

        // One real session afterwards is all the gateway's own metrics count; the route's policy still applies to it.
        using (var client = new ClientWebSocket())
        {
            client.Options.SetRequestHeader("Origin", "https://chat.example");
            await client.ConnectAsync(new Uri(gateway.Ws, "chat/lobby"), CancellationToken.None);
            Assert.Equal("b1", await WebSocketClient.ReceiveWelcomeBackendAsync(client));
            await WebSocketClient.CloseAsync(client);
        }
        var scrape = await MetricsScrape.FetchAsync(gateway);
        Assert.Equal(1, scrape.Value("gateway_websocket_connections_opened_total"));
        Assert.Equal(1, scrape.Value("gateway_websocket_connections_opened_total", ("route", "chat")));
        Assert.DoesNotContain(route.Token, scrape.Text);
        // Its YARP provider changed twice (route in, route out): no reload of the file.
        Assert.Equal(0, scrape.Value("gateway_config_reloads_total"));
        // The connections did happen, and Kestrel's own connection metrics (no route label) say so: one per HTTP/1.1
        // session (two targets of three), fewer over HTTP/2, whose sessions share connections. The private echo
        // backend's are not counted.
        Assert.True(scrape.Value("kestrel_connection_duration_seconds_count") >= report.Sessions * 2 / 3,
            $"kestrel counted {scrape.Value("kestrel_connection_duration_seconds_count")} connections for {report.Sessions} sessions");
    }

    [Fact]
    public async Task Shutdown_during_the_warm_up_is_prompt()
    {
        await using var backend = await Backend.StartAsync("b1");
        await using var gateway = await GatewayServer.StartAsync(Config(backend, "00:01:00"));
        var warmup = gateway.Services.GetRequiredService<WarmupService>();
        await Task.Delay(TimeSpan.FromMilliseconds(500));
        Assert.False(warmup.Completion.IsCompleted);

        var clock = Stopwatch.StartNew();
        await gateway.StopAsync(TimeSpan.FromSeconds(10));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"stopping took {clock.Elapsed}");
        Assert.True(warmup.Completion.IsCompletedSuccessfully);
        Assert.Null(warmup.Report);
    }

    [Fact]
    public async Task Disabled_it_costs_nothing_and_the_gateway_is_ready_at_once()
    {
        await using var backend = await Backend.StartAsync("b1");
        var config = Config(backend, "00:00:04");
        config["Gateway"]!["Warmup"] = new JsonObject { ["Enabled"] = false };
        await using var gateway = await GatewayServer.StartAsync(config);
        Assert.Null(gateway.Services.GetService<WarmupService>());
        using var http = new HttpClient();
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync(new Uri(gateway.Admin, "/readyz"))).StatusCode);
    }
}
