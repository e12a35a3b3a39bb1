using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Relay;
using Gateway.Tests.Handshake;
using Gateway.Tests.Infrastructure;
using Gateway.Tests.Relay;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace Gateway.Tests.Policies;

/// <summary>Editing the Gateway section's policies and trusted forwarders while running.</summary>
[Collection(SerialCollection.Name)]
public sealed class PolicyReloadTests
{
    private static async Task EditAsync(GatewayServer gateway, CapturingLoggerProvider logs, Action<JsonObject> edit)
    {
        var before = logs.Records.Count(r => r.Message.Contains("the Gateway section changed", StringComparison.Ordinal));
        var config = JsonNode.Parse(await File.ReadAllTextAsync(gateway.ConfigPath))!.AsObject();
        edit((JsonObject)config["Gateway"]!);
        await gateway.RewriteConfigAsync(config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        await Retry.Eventually(
            () => Assert.True(logs.Records.Count(r => r.Message.Contains("the Gateway section changed", StringComparison.Ordinal)) > before),
            TimeSpan.FromSeconds(10));
    }

    private static JsonObject Config(Uri backend, JsonObject policy)
    {
        var config = RelayConfig.Build(backend, policy);
        config["Logging"]!["LogLevel"]!["Gateway.Reload"] = "Information";
        return config;
    }

    [Fact]
    public async Task New_handshakes_get_the_edited_policy_and_an_open_tunnel_keeps_working()
    {
        await using var backend = new RawBackend();
        var logs = new CapturingLoggerProvider();
        var policy = RelayConfig.KeepAlive("00:00:30", "00:00:15");
        policy["Handshake"] = new JsonObject { ["AllowedOrigins"] = new JsonArray("https://a.example") };
        await using var gateway = await GatewayServer.StartAsync(Config(backend.Address, policy), services => services.AddSingleton<ILoggerProvider>(logs));
        await using var open = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/open", "Origin: https://a.example");

        await EditAsync(gateway, logs, section => section["WebSocketPolicies"]!["test"]!["Handshake"]!["AllowedOrigins"] = new JsonArray("https://b.example"));

        var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/a", "Origin: https://a.example"));
        Assert.Contains("403", refused.Message);
        await using var admitted = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/b", "Origin: https://b.example");
        await open.SendAsync(RawFrames.Encode(RawFrame.Text, "still relayed"u8));
        Assert.Equal(RawFrame.Text, (await open.ReceiveAsync(TimeSpan.FromSeconds(5)))!.Opcode);
        Assert.Contains(logs.Records, r => r.Message.Contains("applied now: WebSocketPolicies; needs a restart: nothing", StringComparison.Ordinal));
        var metrics = await MetricsScrape.FetchAsync(gateway);
        Assert.Equal(1, metrics.Value("gateway_config_reloads_total", ("result", "success"), ("section", "gateway")));
    }

    [Fact]
    public async Task A_bad_policy_edit_is_refused_and_one_that_needs_a_restart_says_so()
    {
        await using var backend = new RawBackend();
        var logs = new CapturingLoggerProvider();
        await using var gateway = await GatewayServer.StartAsync(Config(backend.Address, RelayConfig.KeepAlive("00:00:30", "00:00:15")),
            services => services.AddSingleton<ILoggerProvider>(logs));

        var config = JsonNode.Parse(await File.ReadAllTextAsync(gateway.ConfigPath))!.AsObject();
        config["Gateway"]!["WebSocketPolicies"]!["test"]!["KeepAlive"]!["Interval"] = "-00:00:01";
        await gateway.RewriteConfigAsync(config.ToJsonString());
        var refused = await Retry.Eventually(
            () => Task.FromResult(Assert.Single(logs.Records, r => r.Message.Contains("nothing of the edit applied", StringComparison.Ordinal))),
            TimeSpan.FromSeconds(10));
        Assert.Contains("Gateway:WebSocketPolicies:test:KeepAlive:Interval", refused.Message);
        await using (await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/still"))
        {
        }

        await EditAsync(gateway, logs, section =>
        {
            section["WebSocketPolicies"]!["test"]!["KeepAlive"]!["Interval"] = "00:00:30"; // as running
            section["ListenBacklog"] = 100;
        });
        Assert.Contains(logs.Records, r => r.Message.Contains("applied now: nothing; needs a restart: ListenBacklog", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Trusting_a_forwarder_by_reload_makes_its_clients_count_apart()
    {
        await using var backend = new RawBackend();
        var logs = new CapturingLoggerProvider();
        var policy = RelayConfig.KeepAlive("00:00:30", "00:00:15");
        policy["Limits"] = new JsonObject { ["MaxConnectionsPerClient"] = 1 };
        await using var gateway = await GatewayServer.StartAsync(Config(backend.Address, policy), services => services.AddSingleton<ILoggerProvider>(logs));

        // Untrusted, X-Forwarded-For is ignored: both handshakes come from 127.0.0.1, which may hold one tunnel.
        await using (var first = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/1", "X-Forwarded-For: 198.51.100.1"))
        {
            var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/2", "X-Forwarded-For: 198.51.100.2"));
            Assert.Contains("503", refused.Message);
        }

        await EditAsync(gateway, logs, section => section["TrustedForwarders"] = new JsonArray("127.0.0.1"));
        await using var one = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/3", "X-Forwarded-For: 198.51.100.1");
        await using var two = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/4", "X-Forwarded-For: 198.51.100.2");
    }

    [Fact]
    public async Task An_open_tunnel_follows_its_policys_new_keepalive_interval()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        await using var backend = new RawBackend();
        var logs = new CapturingLoggerProvider();
        await using var gateway = await GatewayServer.StartAsync(Config(backend.Address, RelayConfig.KeepAlive("00:05:00", "00:00:15")),
            services => services.AddSingleton<TimeProvider>(time).AddSingleton<ILoggerProvider>(logs));
        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/idle");

        await EditAsync(gateway, logs, section => section["WebSocketPolicies"]!["test"]!["KeepAlive"]!["Interval"] = "00:00:10");
        var sweeper = gateway.Services.GetRequiredService<KeepAliveSweeper>();
        for (var step = 0; step < 20 && client.PingsSeen == 0; step++)
        {
            time.Advance(TimeSpan.FromSeconds(1));
            await Task.Delay(20);
        }
        Assert.True(client.PingsSeen >= 1, "no ping within 20 s of virtual time after the interval went from 5 min to 10 s");
        Assert.True(sweeper.Period <= TimeSpan.FromSeconds(2.5), $"the sweep runs every {sweeper.Period}");
    }
}
