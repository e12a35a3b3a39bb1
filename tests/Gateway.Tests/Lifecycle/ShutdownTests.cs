using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Gateway.Tests.Infrastructure;
using Gateway.Tests.Relay;
using Xunit.Abstractions;

namespace Gateway.Tests.Lifecycle;

/// <summary>The drain on shutdown as the operator's probes see it, and how soon it ends.</summary>
[Collection(SerialCollection.Name)]
public sealed class ShutdownTests(ITestOutputHelper output)
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(2) };

    private static JsonObject Config(RawBackend backend, string delay, string period)
    {
        var config = RelayConfig.Build(backend.Address, RelayConfig.KeepAlive("00:00:30", "00:00:15"));
        var gateway = (JsonObject)config["Gateway"]!;
        gateway["ShutdownTimeout"] = "00:00:15";
        gateway["Drain"] = new JsonObject { ["Delay"] = delay, ["Period"] = period };
        return config;
    }

    [Fact]
    public async Task The_admin_listener_answers_through_the_drain_period_after_the_public_listeners_stopped()
    {
        await using var backend = new RawBackend();
        await using var gateway = await GatewayServer.StartAsync(Config(backend, "00:00:00.300", "00:00:04"));
        var clients = new List<RawWebSocketClient>();
        try
        {
            // Clients that never answer the Close: each tunnel lasts its close grace, so the period runs its course.
            for (var i = 0; i < 4; i++)
            {
                clients.Add(await RawWebSocketClient.ConnectAsync(gateway.Ws, $"/raw/s{i}"));
            }
            var stopping = gateway.StopAsync(TimeSpan.FromSeconds(20));
            await Task.Delay(TimeSpan.FromSeconds(1.3));
            Assert.False(stopping.IsCompleted, "the drain ended before the check");

            await Assert.ThrowsAnyAsync<Exception>(() => RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/late"));
            Assert.Equal(HttpStatusCode.OK, (await Http.GetAsync(new Uri(gateway.Admin, "/healthz"))).StatusCode);
            Assert.Equal(HttpStatusCode.ServiceUnavailable, (await Http.GetAsync(new Uri(gateway.Admin, "/readyz"))).StatusCode);
            var metrics = await Http.GetStringAsync(new Uri(gateway.Admin, "/metrics"));
            Assert.Contains("gateway_websocket_connections_closed_total", metrics);
            await stopping;
        }
        finally
        {
            foreach (var client in clients)
            {
                await client.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task Shutdown_ends_when_the_last_tunnel_is_gone_not_at_the_end_of_the_spread()
    {
        await using var backend = new RawBackend();
        await using var gateway = await GatewayServer.StartAsync(Config(backend, "00:00:00", "00:00:06"));
        var clients = new List<RawWebSocketClient>();
        try
        {
            for (var i = 0; i < 3; i++)
            {
                clients.Add(await RawWebSocketClient.ConnectAsync(gateway.Ws, $"/raw/short{i}"));
            }
            var clock = Stopwatch.StartNew();
            var stopping = gateway.StopAsync(TimeSpan.FromSeconds(20));
            // Short tunnels: their clients leave on their own, before their slots in the spread (at 0, 2 and 4 s).
            await Task.Delay(TimeSpan.FromMilliseconds(300));
            foreach (var client in clients)
            {
                await client.SendAsync(RawFrames.CloseFrame(1000));
            }
            await stopping;
            output.WriteLine($"shutdown took {clock.Elapsed.TotalMilliseconds:0} ms");
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2.5), $"shutdown took {clock.Elapsed} with every tunnel gone after 0.3 s");
        }
        finally
        {
            foreach (var client in clients)
            {
                await client.DisposeAsync();
            }
        }
    }
}
