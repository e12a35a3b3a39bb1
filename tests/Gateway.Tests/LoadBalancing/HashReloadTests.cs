using System.Text.Json.Nodes;
using Gateway.Tests.Handshake;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Gateway.Tests.LoadBalancing;

/// <summary>Serial: the reload counter is read from /metrics (see <see cref="SerialCollection"/>).</summary>
[Collection(SerialCollection.Name)]
public sealed class HashReloadTests
{
    [Fact]
    public async Task A_reload_with_a_bad_hash_key_is_refused_with_its_key_and_the_rooms_keep_their_backends()
    {
        await using var b1 = await Backend.StartAsync("b1");
        await using var b2 = await Backend.StartAsync("b2");
        var logs = new CapturingLoggerProvider();
        // No bound, so tunnels still closing cannot move a room.
        var config = RoomRoutingTests.RoomsConfig([b1, b2], balanceFactor: "0");
        await using var gateway = await GatewayServer.StartAsync(config, services => services.AddSingleton<ILoggerProvider>(logs));
        var rooms = new[] { "red", "green", "blue", "amber" };
        var before = new Dictionary<string, string>();
        foreach (var room in rooms)
        {
            before[room] = await BackendOfAsync(gateway, room);
        }
        var failures = await FailuresAsync(gateway);

        var broken = (JsonObject)JsonNode.Parse(await File.ReadAllTextAsync(gateway.ConfigPath))!;
        broken["ReverseProxy"]!["Clusters"]!["chat"]!["Metadata"]!["HashKey"] = "header:X Room";
        await gateway.RewriteConfigAsync(broken.ToJsonString());

        await Retry.Eventually(async () => Assert.True(await FailuresAsync(gateway) > failures), TimeSpan.FromSeconds(10));
        Assert.Contains(logs.Lines, line => line.Message.Contains("ReverseProxy:Clusters:chat:Metadata:HashKey: 'header:X Room': 'X Room' is not a header name"));
        foreach (var room in rooms)
        {
            Assert.Equal(before[room], await BackendOfAsync(gateway, room));
        }
    }

    private static async Task<string> BackendOfAsync(GatewayServer gateway, string room)
    {
        var member = await RoomRoutingTests.JoinAsync(gateway, $"/chat/{room}");
        await WebSocketClient.CloseAsync(member.Socket);
        member.Socket.Dispose();
        return member.Backend;
    }

    private static async Task<double> FailuresAsync(GatewayServer gateway) =>
        (await MetricsScrape.FetchAsync(gateway)).Value("gateway_config_reloads_total", ("result", "failure"));
}
