using System.Text.Json.Nodes;
using Gateway.Relay;
using Gateway.Tests.Handshake;
using Gateway.Tests.Infrastructure;
using Gateway.Tests.Relay;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace Gateway.Tests.Identity;

/// <summary>
/// A token that expires while its tunnel is open, in virtual time (the gateway's clock is a <see cref="FakeTimeProvider"/>):
/// with <c>OnExpiry: Close</c> both sides hear 1008 "token expired" within one keepalive sweep of the expiry, counted and in
/// the access log; with <c>KeepOpen</c> the tunnel lives on.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class TokenExpiryTests : IDisposable
{
    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);
    private readonly TestTokens _tokens = new();

    public void Dispose() => _tokens.Dispose();

    private async Task<GatewayServer> StartAsync(RawBackend backend, string onExpiry, CapturingLoggerProvider logs, bool lean)
    {
        var policy = RelayConfig.KeepAlive("00:00:30", "00:00:15");
        policy["Identity"] = new JsonObject
        {
            ["SigningKeys"] = HandshakeGateway.Strings(_tokens.RsaPublicKeyFile),
            ["Issuer"] = TestTokens.Issuer,
            ["Audience"] = TestTokens.Audience,
            ["ClockSkew"] = "00:00:00",
            ["OnExpiry"] = onExpiry,
        };
        var config = RelayConfig.Build(backend.Address, policy, lean: lean);
        config["Logging"]!["LogLevel"]!["Gateway.AccessLog"] = "Information";
        return await GatewayServer.StartAsync(config, services =>
        {
            services.AddSingleton<TimeProvider>(_time);
            services.AddSingleton<ILoggerProvider>(logs);
        });
    }

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

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_token_expiring_during_the_tunnel_closes_it_with_1008_within_one_sweep(bool lean)
    {
        await using var backend = new RawBackend();
        var logs = new CapturingLoggerProvider();
        await using var gateway = await StartAsync(backend, "Close", logs, lean);
        var token = _tokens.Create("alice", now: _time.GetUtcNow().UtcDateTime, lifetime: TimeSpan.FromSeconds(90));
        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/expiring", $"Authorization: Bearer {token}");
        var period = gateway.Services.GetRequiredService<KeepAliveSweeper>().Period;

        // A second before its expiry the tunnel is open, pings answered all along.
        await AdvanceAsync(gateway, TimeSpan.FromSeconds(89));
        await client.SendAsync(RawFrames.Encode(RawFrame.Text, "still valid"u8));
        var echo = await client.ReceiveAsync(TimeSpan.FromSeconds(5));
        while (echo is { Opcode: RawFrame.Ping })
        {
            echo = await client.ReceiveAsync(TimeSpan.FromSeconds(5));
        }
        Assert.Equal(RawFrame.Text, echo!.Opcode);

        // The expiry, plus one sweep period: both sides have 1008.
        await AdvanceAsync(gateway, TimeSpan.FromSeconds(1) + period);
        var close = await client.ReceiveAsync(TimeSpan.FromSeconds(5));
        while (close is { Opcode: RawFrame.Ping })
        {
            close = await client.ReceiveAsync(TimeSpan.FromSeconds(5));
        }
        Assert.True(close is { Opcode: RawFrame.Close, CloseCode: 1008 }, $"the client got {close?.ToString() ?? "nothing"}");
        Assert.Equal("token expired", close!.CloseReason);
        Assert.Equal(1008, (await backend.CloseReceived.Task.WaitAsync(TimeSpan.FromSeconds(5))).CloseCode);
        await client.SendAsync(RawFrames.CloseFrame(1008));

        await Retry.Eventually(async () =>
        {
            var scrape = await MetricsScrape.FetchAsync(gateway);
            Assert.Equal(1, scrape.Value("gateway_websocket_connections_closed_total", ("closed_by", "token_expired"), ("code", "1008")));
        }, TimeSpan.FromSeconds(5));
        var line = await Retry.Eventually(() => Task.FromResult(Assert.Single(logs.Records, r => r.Category == "Gateway.AccessLog")), TimeSpan.FromSeconds(5));
        Assert.EndsWith(" 1008 token_expired", line.Message);
    }

    [Fact]
    public async Task With_KeepOpen_the_tunnel_outlives_its_token()
    {
        await using var backend = new RawBackend();
        var logs = new CapturingLoggerProvider();
        await using var gateway = await StartAsync(backend, "KeepOpen", logs, lean: true);
        var token = _tokens.Create("bob", now: _time.GetUtcNow().UtcDateTime, lifetime: TimeSpan.FromSeconds(30));
        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/lasting", $"Authorization: Bearer {token}");

        await AdvanceAsync(gateway, TimeSpan.FromMinutes(2));
        await client.SendAsync(RawFrames.Encode(RawFrame.Text, "later"u8));
        RawFrame? frame;
        do
        {
            frame = await client.ReceiveAsync(TimeSpan.FromSeconds(5));
        }
        while (frame is { Opcode: RawFrame.Ping });
        Assert.Equal(RawFrame.Text, frame!.Opcode);
    }
}
