using System.Text.Json.Nodes;
using Gateway.Tests.Handshake;
using Gateway.Tests.Infrastructure;
using Gateway.Tests.Relay;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Gateway.Tests.Lifecycle;

/// <summary>A reload that removes a destination: its tunnels get 1012, the others are untouched (or all kept, if asked).</summary>
[Collection(SerialCollection.Name)]
public sealed class RemovedDestinationTests
{
    private static JsonObject Config(RawBackend one, RawBackend two, bool keep, bool lean)
    {
        var config = RelayConfig.Build(one.Address, RelayConfig.KeepAlive("00:00:30", "00:00:15"), lean: lean);
        var cluster = (JsonObject)config["ReverseProxy"]!["Clusters"]!["raw"]!;
        cluster["Destinations"]!["d2"] = new JsonObject { ["Address"] = two.Address.ToString() };
        cluster["LoadBalancingPolicy"] = "RoundRobin";
        if (keep)
        {
            cluster["Metadata"] = new JsonObject { ["OnDestinationRemoved"] = "Keep" };
        }
        return config;
    }

    [Theory]
    [InlineData(false, true)]
    [InlineData(true, true)]
    [InlineData(false, false)]
    [InlineData(true, false)]
    public async Task Removing_a_destination_closes_its_tunnels_with_1012_and_leaves_the_others(bool keep, bool lean)
    {
        await using var one = new RawBackend();
        await using var two = new RawBackend();
        var logs = new CapturingLoggerProvider();
        var config = Config(one, two, keep, lean);
        config["Logging"]!["LogLevel"]!["Gateway.Reload"] = "Information";
        await using var gateway = await GatewayServer.StartAsync(config, services => services.AddSingleton<ILoggerProvider>(logs));
        var clients = new List<RawWebSocketClient>();
        try
        {
            for (var i = 0; i < 6; i++)
            {
                clients.Add(await RawWebSocketClient.ConnectAsync(gateway.Ws, $"/raw/t{i}"));
            }
            Assert.Equal(3, one.Connections);
            Assert.Equal(3, two.Connections);

            // The file as the gateway wrote it, less one destination: the Gateway section stays as it is.
            var edited = JsonNode.Parse(await File.ReadAllTextAsync(gateway.ConfigPath))!.AsObject();
            ((JsonObject)edited["ReverseProxy"]!["Clusters"]!["raw"]!["Destinations"]!).Remove("d2");
            await gateway.RewriteConfigAsync(edited.ToJsonString());
            var applied = await Retry.Eventually(
                () => Task.FromResult(Assert.Single(logs.Records, r => r.Message.Contains("reloaded and applied", StringComparison.Ordinal))),
                TimeSpan.FromSeconds(10));
            Assert.Contains("destinations removed: raw/d2", applied.Message);
            Assert.DoesNotContain(logs.Records, r => r.Message.Contains("Gateway section changed", StringComparison.Ordinal));

            var frames = await Task.WhenAll(clients.Select(async c =>
            {
                await c.SendAsync(RawFrames.Encode(RawFrame.Text, "after the reload"u8));
                return await c.ReceiveAsync(TimeSpan.FromSeconds(5));
            }));
            var closes = frames.Where(f => f is { Opcode: RawFrame.Close }).ToList();
            var echoes = frames.Where(f => f is { Opcode: RawFrame.Text }).ToList();
            if (keep)
            {
                Assert.Empty(closes);
                Assert.Equal(6, echoes.Count);
            }
            else
            {
                Assert.Equal(3, closes.Count);
                Assert.All(closes, c => Assert.Equal(1012, c!.CloseCode));
                Assert.Equal(3, echoes.Count);
                await Retry.Eventually(() => Assert.Equal(3, two.Received.Count(f => f is { Opcode: RawFrame.Close, CloseCode: 1012 })), TimeSpan.FromSeconds(5));
                Assert.DoesNotContain(one.Received, f => f.Opcode == RawFrame.Close);
            }
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
