using System.Text;
using Gateway.Relay;
using Gateway.Tests.Infrastructure;
using Gateway.Tests.Relay;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;

namespace Gateway.Tests.KeepAlive;

/// <summary>
/// Keepalive, reaping and the close grace at their real defaults (30 s interval, 15 s timeout, 2 s grace), on real
/// sockets, in virtual time: the gateway's clock is a <see cref="FakeTimeProvider"/> the test moves forward, so minutes
/// of the protocol take a fraction of a second and nothing waits on the wall clock for a deadline.
/// </summary>
/// <remarks>On the lean HTTP/1.1 path here, on Kestrel's in <see cref="VirtualTimeTestsOnKestrelsPath"/>.</remarks>
[Collection(SerialCollection.Name)]
public class VirtualTimeTests
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);

    /// <summary>Gateway:LeanUpgrades for every gateway these tests start.</summary>
    protected virtual bool Lean => true;

    private Task<GatewayServer> StartAsync(RawBackend backend, string interval = "00:00:30", string timeout = "00:00:15") =>
        GatewayServer.StartAsync(RelayConfig.Build(backend.Address, RelayConfig.KeepAlive(interval, timeout), lean: Lean),
            services => services.AddSingleton<TimeProvider>(_time));

    /// <summary>Moves the gateway's clock forward a sweep period at a time, letting each sweep's work run.</summary>
    private async Task AdvanceAsync(GatewayServer gateway, TimeSpan by)
    {
        var period = gateway.Services.GetRequiredService<KeepAliveSweeper>().Period;
        for (var passed = TimeSpan.Zero; passed < by; passed += period)
        {
            _time.Advance(period);
            await Task.Delay(5);
        }
    }

    [Fact]
    public async Task A_silent_client_is_pinged_after_the_interval_and_reaped_after_the_timeout()
    {
        await using var backend = new RawBackend();
        await using var gateway = await StartAsync(backend);
        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/silent");
        client.AnswerPings = false;

        await AdvanceAsync(gateway, TimeSpan.FromSeconds(22));
        Assert.Equal(0, client.PingsSeen); // not before three quarters of the interval (each tunnel's own offset)

        // Then within the interval, one sweep period at a time.
        var period = gateway.Services.GetRequiredService<KeepAliveSweeper>().Period;
        for (var waited = TimeSpan.Zero; client.PingsSeen == 0 && waited < TimeSpan.FromSeconds(9); waited += period)
        {
            await AdvanceAsync(gateway, period);
            await Task.Delay(20);
        }
        Assert.Equal(1, client.PingsSeen);
        Assert.True(backend.Count(RawFrame.Ping) >= 1, "the backend leg is pinged too");

        // 14 s after the ping the client is still given time; by 15 s plus a sweep it is not.
        await AdvanceAsync(gateway, TimeSpan.FromSeconds(13));
        Assert.False(backend.CloseReceived.Task.IsCompleted);
        await AdvanceAsync(gateway, TimeSpan.FromSeconds(3));

        var close = await client.ReceiveAsync(TimeSpan.FromSeconds(5));
        Assert.True(close is { Opcode: RawFrame.Close, CloseCode: 1001 }, $"the client got {close?.ToString() ?? "nothing"}");
        Assert.Equal("ping timeout", close!.CloseReason);
        Assert.Equal(1001, (await backend.CloseReceived.Task.WaitAsync(TimeSpan.FromSeconds(5))).CloseCode);
        await AdvanceAsync(gateway, TimeSpan.FromSeconds(1));
        await client.Ended.WaitAsync(TimeSpan.FromSeconds(5));
        var metrics = await Retry.Eventually(async () =>
        {
            var scrape = await MetricsScrape.FetchAsync(gateway);
            Assert.Equal(1, scrape.Value("gateway_keepalive_peers_reaped_total", ("side", "client")));
            return scrape;
        }, TimeSpan.FromSeconds(5));
        Assert.Equal(1, metrics.Value("gateway_websocket_connections_closed_total", ("closed_by", "gateway_reaped"), ("code", "1001")));
    }

    [Fact]
    public async Task A_client_answering_pings_is_never_reaped_and_its_pongs_never_reach_the_backend()
    {
        await using var backend = new RawBackend();
        await using var gateway = await StartAsync(backend);
        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/alive");

        // Ten minutes of silence but for pings and pongs.
        for (var minute = 0; minute < 10; minute++)
        {
            await AdvanceAsync(gateway, TimeSpan.FromMinutes(1));
        }
        Assert.InRange(client.PingsSeen, 18, 27); // every 22.5-30 s
        Assert.Equal(0, backend.Count(RawFrame.Pong));
        await client.SendAsync(RawFrames.Encode(RawFrame.Text, "ten minutes later"u8));
        Assert.Equal("ten minutes later", Encoding.UTF8.GetString((await client.ReceiveAsync(TimeSpan.FromSeconds(5)))!.Payload));
    }

    [Fact]
    public async Task A_backend_that_stops_answering_gets_its_client_1011_and_counts_against_it()
    {
        await using var backend = new RawBackend { AnswerPings = false };
        await using var gateway = await StartAsync(backend);
        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/hung");

        await AdvanceAsync(gateway, TimeSpan.FromSeconds(47)); // interval + timeout, plus a sweep or two
        var close = await client.ReceiveAsync(TimeSpan.FromSeconds(5));
        Assert.True(close is { Opcode: RawFrame.Close, CloseCode: 1011 }, $"the client got {close?.ToString() ?? "nothing"}");
        var metrics = await Retry.Eventually(async () =>
        {
            var scrape = await MetricsScrape.FetchAsync(gateway);
            Assert.Equal(1, scrape.Value("gateway_keepalive_peers_reaped_total", ("side", "backend")));
            return scrape;
        }, TimeSpan.FromSeconds(5));
        Assert.Equal(1, metrics.Value("gateway_proxy_errors_total", ("error", "UpgradeResponseDestination")));
    }

    [Fact]
    public async Task A_backend_that_never_answers_the_clients_close_is_cut_after_twice_the_close_grace()
    {
        await using var backend = new RawBackend();
        await using var gateway = await StartAsync(backend, interval: "00:00:00", timeout: "00:00:15");
        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/mute");
        await Retry.Eventually(() => Assert.Equal(1, backend.Connections), TimeSpan.FromSeconds(5));
        backend.Responsive = false;
        await client.SendAsync(RawFrames.CloseFrame(1000, "done"));
        await Retry.Eventually(() => Assert.Single(backend.Received, f => f.Opcode == RawFrame.Close), TimeSpan.FromSeconds(5));

        await AdvanceAsync(gateway, TimeSpan.FromSeconds(3));
        Assert.False(client.Ended.IsCompleted, "cut before the grace ended");
        await AdvanceAsync(gateway, TimeSpan.FromSeconds(2));
        await client.Ended.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task Open_tunnels_report_their_traffic_every_ten_seconds()
    {
        await using var backend = new RawBackend();
        await using var gateway = await StartAsync(backend);
        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/chatty");
        for (var i = 0; i < 3; i++)
        {
            await client.SendAsync(RawFrames.Encode(RawFrame.Text, "12345"u8));
            Assert.NotNull(await client.ReceiveAsync(TimeSpan.FromSeconds(5)));
        }

        var before = await MetricsScrape.FetchAsync(gateway);
        Assert.Equal(0, before.Value("gateway_relay_messages_total", ("direction", "client_to_backend")));
        await AdvanceAsync(gateway, TimeSpan.FromSeconds(11));
        var after = await Retry.Eventually(async () =>
        {
            var scrape = await MetricsScrape.FetchAsync(gateway);
            Assert.Equal(3, scrape.Value("gateway_relay_messages_total", ("direction", "client_to_backend")));
            return scrape;
        }, TimeSpan.FromSeconds(5));
        Assert.Equal(3, after.Value("gateway_relay_messages_total", ("direction", "backend_to_client")));
        Assert.Equal(15, after.Value("gateway_relay_payload_bytes_total", ("direction", "client_to_backend")));

        // The tunnel is still open, and closing it adds nothing twice.
        await client.SendAsync(RawFrames.CloseFrame(1000));
        Assert.Equal(RawFrame.Close, (await client.ReceiveAsync(TimeSpan.FromSeconds(5)))!.Opcode);
        await Retry.Eventually(async () =>
        {
            var scrape = await MetricsScrape.FetchAsync(gateway);
            Assert.Equal(1, scrape.Value("gateway_websocket_connections_closed_total"));
            Assert.Equal(3, scrape.Value("gateway_relay_messages_total", ("direction", "client_to_backend")));
        }, TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task A_tunnel_older_than_its_policys_max_lifetime_gets_1001_on_both_sides()
    {
        await using var backend = new RawBackend();
        var policy = RelayConfig.KeepAlive("00:00:30", "00:00:15");
        policy["Limits"] = new System.Text.Json.Nodes.JsonObject { ["MaxLifetime"] = "00:10:00" };
        await using var gateway = await GatewayServer.StartAsync(RelayConfig.Build(backend.Address, policy, lean: Lean),
            services => services.AddSingleton<TimeProvider>(_time));
        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/long-lived");

        await AdvanceAsync(gateway, TimeSpan.FromMinutes(8.9)); // up to a tenth early: not before 9 minutes
        await client.SendAsync(RawFrames.Encode(RawFrame.Text, "still open"u8));
        Assert.Equal(RawFrame.Text, (await client.ReceiveAsync(TimeSpan.FromSeconds(5)))!.Opcode);

        await AdvanceAsync(gateway, TimeSpan.FromMinutes(1.2));
        var close = await client.ReceiveAsync(TimeSpan.FromSeconds(5));
        Assert.True(close is { Opcode: RawFrame.Close, CloseCode: 1001 }, $"the client got {close?.ToString() ?? "nothing"}");
        Assert.Equal("connection lifetime reached", close!.CloseReason);
        Assert.Equal(1001, (await backend.CloseReceived.Task.WaitAsync(TimeSpan.FromSeconds(5))).CloseCode);
        await client.SendAsync(RawFrames.CloseFrame(1001));
        await Retry.Eventually(async () =>
        {
            var scrape = await MetricsScrape.FetchAsync(gateway);
            Assert.Equal(1, scrape.Value("gateway_websocket_connections_closed_total", ("closed_by", "max_lifetime"), ("code", "1001")));
        }, TimeSpan.FromSeconds(5));
    }
}

/// <summary>The same virtual-time tests with HTTP/1.1 upgrades on Kestrel's own path (Gateway:LeanUpgrades false).</summary>
[Collection(SerialCollection.Name)]
public sealed class VirtualTimeTestsOnKestrelsPath : VirtualTimeTests
{
    protected override bool Lean => false;
}
