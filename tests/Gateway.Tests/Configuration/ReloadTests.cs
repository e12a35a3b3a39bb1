using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Configuration;

public sealed class ReloadTests
{
    [Fact]
    public async Task Editing_the_file_reroutes_and_a_broken_edit_keeps_the_running_routes()
    {
        await using var a = await Backend.StartAsync("a1");
        await using var b = await Backend.StartAsync("b1");
        var config = GatewayServer.Config(GatewayServer.Proxy([("chat", "/chat", "a")], [("a", [a]), ("b", [b])]));
        await using var gateway = await GatewayServer.StartAsync(config);
        Assert.Equal("a1", await WelcomeAsync(gateway));

        // Re-point the route at cluster b: YARP applies it without a restart.
        var rerouted = (JsonObject)JsonNode.Parse(await File.ReadAllTextAsync(gateway.ConfigPath))!;
        rerouted["ReverseProxy"]!["Routes"]!["chat"]!["ClusterId"] = "b";
        await gateway.RewriteConfigAsync(rerouted.ToJsonString());
        await Retry.Eventually(async () => Assert.Equal("b1", await WelcomeAsync(gateway)), TimeSpan.FromSeconds(10));

        // A half-written file must not take the routes away.
        await gateway.RewriteConfigAsync("{ \"ReverseProxy\": { \"Routes\": ");
        await Task.Delay(1500);
        Assert.Equal("b1", await WelcomeAsync(gateway));

        // Nor must a file that parses but names a cluster that does not exist (YARP keeps the last valid config).
        var broken = (JsonObject)rerouted.DeepClone();
        broken["ReverseProxy"]!["Routes"]!["chat"]!["ClusterId"] = "missing";
        await gateway.RewriteConfigAsync(broken.ToJsonString());
        await Task.Delay(1500);
        Assert.Equal("b1", await WelcomeAsync(gateway));

        // A good edit after the bad ones applies again.
        rerouted["ReverseProxy"]!["Routes"]!["chat"]!["ClusterId"] = "a";
        await gateway.RewriteConfigAsync(rerouted.ToJsonString());
        await Retry.Eventually(async () => Assert.Equal("a1", await WelcomeAsync(gateway)), TimeSpan.FromSeconds(10));
    }

    private static async Task<string> WelcomeAsync(GatewayServer gateway)
    {
        using var socket = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/chat/lobby", cookies: new CookieContainer());
        var backend = await WebSocketClient.ReceiveWelcomeBackendAsync(socket);
        await WebSocketClient.CloseAsync(socket);
        return backend;
    }
}
