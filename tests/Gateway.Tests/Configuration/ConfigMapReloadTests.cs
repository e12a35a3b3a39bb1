using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Tests.Infrastructure;
using Gateway.Tests.Tls;

namespace Gateway.Tests.Configuration;

/// <summary>A configuration file mounted from a Kubernetes ConfigMap: an update is a swap of the <c>..data</c> link.</summary>
[Collection(SerialCollection.Name)]
public sealed class ConfigMapReloadTests
{
    [Fact]
    public async Task A_ConfigMap_update_is_applied_without_a_polling_watcher()
    {
        Assert.Null(Environment.GetEnvironmentVariable("DOTNET_USE_POLLING_FILE_WATCHER"));
        await using var a = await Backend.StartAsync("a1");
        await using var b = await Backend.StartAsync("b1");
        var config = GatewayServer.Config(GatewayServer.Proxy([("chat", "/chat", "a")], [("a", [a]), ("b", [b])]));
        SecretMount? mount = null;
        await using var gateway = await GatewayServer.StartAsync(config, place: (directory, text) =>
        {
            mount = new SecretMount(directory);
            return mount.PublishText("gateway.json", text);
        });
        Assert.Equal("a1", await WelcomeAsync(gateway));

        // The file keeps its path and stays a link to ..data/gateway.json; only ..data now points elsewhere.
        var edited = JsonNode.Parse(await File.ReadAllTextAsync(gateway.ConfigPath))!.AsObject();
        edited["ReverseProxy"]!["Routes"]!["chat"]!["ClusterId"] = "b";
        mount!.PublishText("gateway.json", edited.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));

        await Retry.Eventually(async () => Assert.Equal("b1", await WelcomeAsync(gateway)), TimeSpan.FromSeconds(10));
        var metrics = await MetricsScrape.FetchAsync(gateway);
        Assert.Equal(1, metrics.Value("gateway_config_reloads_total", ("result", "success")));
    }

    private static async Task<string> WelcomeAsync(GatewayServer gateway)
    {
        using var socket = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/chat/lobby", cookies: new CookieContainer());
        var backend = await WebSocketClient.ReceiveWelcomeBackendAsync(socket);
        await WebSocketClient.CloseAsync(socket);
        return backend;
    }
}
