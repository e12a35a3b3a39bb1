using System.Diagnostics;
using System.Net;
using System.Text.Json.Nodes;
using Gateway.Tests.Handshake;
using Gateway.Tests.Infrastructure;
using Gateway.Tests.Relay;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace Gateway.Tests.Lifecycle;

/// <summary>A drain that is ended, or a removal that is reverted, stops closing tunnels at once.</summary>
[Collection(SerialCollection.Name)]
public sealed class CancelledDrainTests(ITestOutputHelper output)
{
    private const int PerDestination = 20;
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(10) };

    private static JsonObject Config(RawBackend one, RawBackend two, string period)
    {
        var config = RelayConfig.Build(one.Address, RelayConfig.KeepAlive("00:00:30", "00:00:15"));
        var cluster = (JsonObject)config["ReverseProxy"]!["Clusters"]!["raw"]!;
        cluster["Destinations"]!["d2"] = new JsonObject { ["Address"] = two.Address.ToString() };
        cluster["LoadBalancingPolicy"] = "RoundRobin";
        cluster["SessionAffinity"] = new JsonObject { ["Enabled"] = false };
        var gateway = (JsonObject)config["Gateway"]!;
        gateway["Admin"]!["AllowUnauthenticatedChanges"] = true;
        gateway["ShutdownTimeout"] = "00:00:20";
        gateway["Drain"] = new JsonObject { ["Delay"] = "00:00:00", ["Period"] = period };
        return config;
    }

    private static async Task<List<RawWebSocketClient>> OpenAsync(GatewayServer gateway, RawBackend two)
    {
        var clients = new List<RawWebSocketClient>();
        for (var i = 0; i < 2 * PerDestination; i++)
        {
            clients.Add(await RawWebSocketClient.ConnectAsync(gateway.Ws, $"/raw/t{i}"));
        }
        Assert.Equal(PerDestination, two.Connections);
        return clients;
    }

    private static int Closes(RawBackend backend) => backend.Received.Count(f => f is { Opcode: RawFrame.Close, CloseCode: 1012 });

    /// <summary>The closes counted once the cancel has taken effect, and again after the whole period would have ended.</summary>
    private async Task AssertNoMoreClosesAsync(RawBackend two, Stopwatch sinceStart, TimeSpan period)
    {
        await Task.Delay(200); // a Close already on its way when the cancel came
        var atCancel = Closes(two);
        var rest = period + TimeSpan.FromMilliseconds(500) - sinceStart.Elapsed;
        await Task.Delay(rest > TimeSpan.FromMilliseconds(500) ? rest : TimeSpan.FromMilliseconds(500));
        var after = Closes(two);
        output.WriteLine($"closed at the cancel: {atCancel} of {PerDestination}; after: {after}");
        Assert.True(atCancel < PerDestination, $"the spread had already closed all {atCancel} tunnels: the test proves nothing");
        Assert.True(after == atCancel, $"{after - atCancel} tunnels were closed after the cancel");
    }

    [Fact]
    public async Task Ending_a_drain_stops_its_closes_at_once()
    {
        await using var one = new RawBackend();
        await using var two = new RawBackend();
        await using var gateway = await GatewayServer.StartAsync(Config(one, two, "00:00:00"));
        var clients = await OpenAsync(gateway, two);
        try
        {
            var drain = new Uri(gateway.Admin, "/clusters/raw/destinations/d2/drain");
            var started = Stopwatch.StartNew();
            Assert.Equal(HttpStatusCode.Accepted, (await Http.PostAsync(new Uri(drain + "?period=00:00:06"), null)).StatusCode);
            await Task.Delay(TimeSpan.FromSeconds(1));
            Assert.Equal(HttpStatusCode.OK, (await Http.DeleteAsync(drain)).StatusCode);
            await AssertNoMoreClosesAsync(two, started, TimeSpan.FromSeconds(6));
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
    public async Task Reverting_a_destination_removal_stops_its_closes_at_once()
    {
        await using var one = new RawBackend();
        await using var two = new RawBackend();
        var logs = new CapturingLoggerProvider();
        var config = Config(one, two, "00:00:10");
        config["Logging"]!["LogLevel"]!["Gateway.Reload"] = "Information";
        await using var gateway = await GatewayServer.StartAsync(config, services => services.AddSingleton<ILoggerProvider>(logs));
        var clients = await OpenAsync(gateway, two);
        try
        {
            var original = await File.ReadAllTextAsync(gateway.ConfigPath);
            var edited = JsonNode.Parse(original)!.AsObject();
            ((JsonObject)edited["ReverseProxy"]!["Clusters"]!["raw"]!["Destinations"]!).Remove("d2");
            var removed = Stopwatch.StartNew();
            await gateway.RewriteConfigAsync(edited.ToJsonString());
            await Retry.Eventually(() => Assert.Contains(logs.Records, r => r.Message.Contains("destinations removed: raw/d2", StringComparison.Ordinal)),
                TimeSpan.FromSeconds(10));
            await Task.Delay(TimeSpan.FromSeconds(1));

            await gateway.RewriteConfigAsync(original);
            await Retry.Eventually(() => Assert.Contains(logs.Records, r => r.Message.Contains("destinations added: raw/d2", StringComparison.Ordinal)),
                TimeSpan.FromSeconds(10));
            await AssertNoMoreClosesAsync(two, removed, TimeSpan.FromSeconds(10));
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
