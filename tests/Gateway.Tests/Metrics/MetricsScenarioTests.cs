using System.Net;
using System.Net.WebSockets;
using System.Text.Json.Nodes;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Metrics;

/// <summary>A scripted scenario, then exact values from /metrics.</summary>
[Collection(SerialCollection.Name)]
public sealed class MetricsScenarioTests
{
    [Fact]
    public async Task The_scrape_counts_exactly_what_the_scenario_did()
    {
        await using var chat = await Backend.StartAsync("chat-1");
        await using var raw = new RawBackend();
        var proxy = new JsonObject
        {
            ["Routes"] = new JsonObject
            {
                ["chat"] = new JsonObject { ["ClusterId"] = "chat", ["Match"] = new JsonObject { ["Path"] = "/echo" } },
                ["raw"] = new JsonObject
                {
                    ["ClusterId"] = "raw",
                    ["Match"] = new JsonObject { ["Path"] = "/raw/{**rest}" },
                    ["Metadata"] = new JsonObject { ["WebSocketPolicy"] = "fast" },
                },
            },
            ["Clusters"] = new JsonObject
            {
                ["chat"] = new JsonObject { ["Destinations"] = new JsonObject { ["chat-1"] = new JsonObject { ["Address"] = chat.Address.ToString() } } },
                ["raw"] = new JsonObject { ["Destinations"] = new JsonObject { ["raw-1"] = new JsonObject { ["Address"] = raw.Address.ToString() } } },
            },
        };
        var config = GatewayServer.Config(proxy);
        config["Gateway"]!["WebSocketPolicies"] = new JsonObject
        {
            // Pings every 0.2 s, but 1.5 s to answer: a pong late by more than that on a busy machine would reap the raw tunnel
            // before the first scrape counts it open.
            ["fast"] = new JsonObject { ["KeepAlive"] = new JsonObject { ["Interval"] = "00:00:00.200", ["Timeout"] = "00:00:01.500" } },
        };
        await using var gateway = await GatewayServer.StartAsync(config);

        // Two chat tunnels and one raw tunnel open; three messages each way on the first chat tunnel.
        using var first = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/echo");
        using var second = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/echo");
        await using var silent = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/x");
        for (var i = 0; i < 3; i++)
        {
            await WebSocketClient.SendTextAsync(first, $"message {i}");
            await WebSocketClient.ReceiveTextAsync(first);
        }

        // A page from a foreign site tries to open a tunnel (the default policy allows only the same origin).
        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() =>
            RawWebSocketClient.ConnectAsync(gateway.Ws, "/echo", "Origin: https://evil.example"));
        Assert.StartsWith("handshake refused: HTTP/1.1 403", refused.Message);

        var open = await MetricsScrape.FetchAsync(gateway);
        ExpositionFormat.AssertValid(open.Text);
        Assert.Equal(1, open.Value("gateway_handshake_refused_total", ("reason", "origin"), ("route", "chat")));
        Assert.Equal(1, open.Value("gateway_handshake_refused_total"));
        Assert.Equal(2, open.Value("gateway_websocket_connections_active", ("route", "chat"), ("cluster", "chat"), ("destination", "chat-1"), ("protocol", "HTTP/1.1"), ("scheme", "ws")));
        Assert.Equal(1, open.Value("gateway_websocket_connections_active", ("route", "raw"), ("destination", "raw-1")));
        Assert.Equal(3, open.Value("gateway_websocket_connections_opened_total"));
        Assert.Equal(3, open.Value("gateway_websocket_handshake_duration_seconds_count"));
        Assert.Equal(1, open.Value("gateway_destination_health", ("cluster", "chat"), ("destination", "chat-1")));

        // A clean close by the client.
        Assert.Equal(WebSocketCloseStatus.NormalClosure, await WebSocketClient.CloseAsync(first));
        // The raw client answers a couple of pings, then stops answering and gets reaped.
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (silent.PingsSeen < 2 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(50);
        }
        silent.AnswerPings = false;
        await raw.CloseReceived.Task.WaitAsync(TimeSpan.FromSeconds(10));
        await silent.Ended.WaitAsync(TimeSpan.FromSeconds(10));

        var after = await Retry.Eventually(async () =>
        {
            var scrape = await MetricsScrape.FetchAsync(gateway);
            Assert.Equal(1, scrape.Value("gateway_websocket_connections_active"));
            return scrape;
        }, TimeSpan.FromSeconds(10));
        Assert.Equal(1, after.Value("gateway_websocket_connections_active", ("route", "chat")));
        Assert.Equal(0, after.Value("gateway_websocket_connections_active", ("route", "raw")));
        Assert.Equal(1, after.Value("gateway_websocket_connections_closed_total", ("route", "chat"), ("closed_by", "client"), ("code", "1000")));
        Assert.Equal(1, after.Value("gateway_websocket_connections_closed_total", ("route", "raw"), ("closed_by", "gateway_reaped"), ("code", "1001")));
        Assert.Equal(2, after.Value("gateway_websocket_connections_closed_total"));
        Assert.Equal(1, after.Value("gateway_keepalive_peers_reaped_total", ("side", "client"), ("route", "raw")));
        Assert.Equal(1, after.Value("gateway_relay_gateway_closes_total", ("side", "backend"), ("code", "1001"), ("route", "raw")));
        Assert.True(after.Value("gateway_keepalive_pings_sent_total", ("side", "client")) >= 1);
        Assert.True(after.Value("gateway_keepalive_pongs_received_total", ("side", "client")) >= 1);
        Assert.Equal(after.Value("gateway_keepalive_pongs_received_total"), after.Value("gateway_keepalive_ping_rtt_seconds_count"));
        // Messages are counted per tunnel when it closes: the first chat tunnel's three each way, and its close frames are not messages.
        Assert.Equal(3, after.Value("gateway_relay_messages_total", ("route", "chat"), ("direction", "client_to_backend")));
        Assert.Equal(3, after.Value("gateway_relay_messages_total", ("route", "chat"), ("direction", "backend_to_client")));
        Assert.Equal(3 * "message 0".Length, after.Value("gateway_relay_payload_bytes_total", ("route", "chat"), ("direction", "client_to_backend")));
        Assert.Equal(2, after.Value("gateway_websocket_connection_duration_seconds_count"));
        // The framework's meters come along.
        Assert.True(after.Has("kestrel_active_connections"));

        ExpositionFormat.AssertValid(after.Text); // promtool runs on a scrape too where installed: PromtoolTests
        await WebSocketClient.CloseAsync(second);
    }

    [Fact]
    public async Task Metrics_are_served_on_the_admin_listener_only()
    {
        await using var backend = await Backend.StartAsync("b1");
        await using var gateway = await GatewayServer.StartAsync(GatewayServer.Config(
            GatewayServer.Proxy([("chat", "/chat", "chat")], [("chat", [backend])])));
        using var http = new HttpClient();
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync(new Uri(gateway.Admin, "/metrics"))).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync(new Uri(gateway.Http, "/metrics"))).StatusCode);
    }

    [Fact]
    public async Task A_client_that_vanishes_without_a_close_is_counted_as_closed_by_the_client_with_1006()
    {
        await using var backend = new RawBackend();
        await using var gateway = await GatewayServer.StartAsync(Relay.RelayConfig.Build(backend.Address, Relay.RelayConfig.KeepAlive("00:00:30", "00:00:10")));
        var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/vanish");
        await client.SendAsync(RawFrames.Encode(RawFrame.Text, "hi"u8));
        Assert.NotNull(await client.ReceiveAsync());
        await client.DisposeAsync(); // TCP closed, no Close frame

        var scrape = await Retry.Eventually(async () =>
        {
            var s = await MetricsScrape.FetchAsync(gateway);
            Assert.Equal(1, s.Value("gateway_websocket_connections_closed_total"));
            return s;
        }, TimeSpan.FromSeconds(10));
        Assert.Equal(1, scrape.Value("gateway_websocket_connections_closed_total", ("closed_by", "client"), ("code", "1006")));
        Assert.Equal(0, scrape.Value("gateway_websocket_connections_active"));
    }
}
