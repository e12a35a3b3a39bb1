using System.Net;
using System.Text.Json.Nodes;
using Gateway.Tests.Handshake;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy;

namespace Gateway.Tests.Reload;

/// <summary>Serial: the reload counter is read from /metrics (see <see cref="SerialCollection"/>).</summary>
[Collection(SerialCollection.Name)]
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
        var reloads = await ReloadsAsync(gateway);

        // Re-point the route at cluster b: YARP applies it without a restart.
        var rerouted = (JsonObject)JsonNode.Parse(await File.ReadAllTextAsync(gateway.ConfigPath))!;
        rerouted["ReverseProxy"]!["Routes"]!["chat"]!["ClusterId"] = "b";
        await gateway.RewriteConfigAsync(rerouted.ToJsonString());
        reloads = await CountedAsync(gateway, reloads, Success);
        await Retry.Eventually(async () => Assert.Equal("b1", await WelcomeAsync(gateway)), TimeSpan.FromSeconds(10));

        // A half-written file must not take the routes away. The failure count says the gateway read it.
        await gateway.RewriteConfigAsync("{ \"ReverseProxy\": { \"Routes\": ");
        reloads = await CountedAsync(gateway, reloads, Failure);
        Assert.Equal("b1", await WelcomeAsync(gateway));

        // Nor must a file that parses but names a cluster that does not exist (YARP keeps the last valid config).
        var broken = (JsonObject)rerouted.DeepClone();
        broken["ReverseProxy"]!["Routes"]!["chat"]!["ClusterId"] = "missing";
        await gateway.RewriteConfigAsync(broken.ToJsonString());
        reloads = await CountedAsync(gateway, reloads, Failure);
        Assert.Equal("b1", await WelcomeAsync(gateway));

        // A good edit after the bad ones applies again.
        rerouted["ReverseProxy"]!["Routes"]!["chat"]!["ClusterId"] = "a";
        await gateway.RewriteConfigAsync(rerouted.ToJsonString());
        await CountedAsync(gateway, reloads, Success);
        await Retry.Eventually(async () => Assert.Equal("a1", await WelcomeAsync(gateway)), TimeSpan.FromSeconds(10));
    }

    /// <summary>
    /// One edit that adds a route and breaks a policy value: before, the route went live while the Gateway part was
    /// refused. Now the edit is checked whole first and nothing of it applies; one log line says so and why.
    /// </summary>
    [Fact]
    public async Task An_edit_with_a_new_route_and_a_bad_Gateway_value_applies_nothing_of_it()
    {
        await using var a = await Backend.StartAsync("a1");
        await using var b = await Backend.StartAsync("b1");
        var logs = new CapturingLoggerProvider();
        var config = GatewayServer.Config(GatewayServer.Proxy([("chat", "/chat", "a")], [("a", [a]), ("b", [b])]));
        config["Gateway"]!["WebSocketPolicies"] = new JsonObject { ["test"] = Relay.RelayConfig.KeepAlive("00:00:30", "00:00:15") };
        await using var gateway = await GatewayServer.StartAsync(config, services => services.AddSingleton<ILoggerProvider>(logs));
        var reloads = await ReloadsAsync(gateway);

        var edit = (JsonObject)JsonNode.Parse(await File.ReadAllTextAsync(gateway.ConfigPath))!;
        edit["ReverseProxy"]!["Routes"]!["late"] = new JsonObject { ["ClusterId"] = "b", ["Match"] = new JsonObject { ["Path"] = "/chat/late" } };
        edit["Gateway"]!["WebSocketPolicies"]!["test"]!["KeepAlive"]!["Interval"] = "-00:00:01";
        await gateway.RewriteConfigAsync(edit.ToJsonString());
        reloads = await CountedAsync(gateway, reloads, Failure);
        var refused = Assert.Single(logs.Records, r => r.Message.Contains("nothing of the edit applied", StringComparison.Ordinal));
        Assert.Contains("Gateway:WebSocketPolicies:test:KeepAlive:Interval", refused.Message);

        // YARP had its chance to read the section (it did within milliseconds before): the route (a literal path, which
        // wins over chat's catch-all to cluster b) is not there, and /chat/late still reaches cluster a.
        await Task.Delay(TimeSpan.FromSeconds(1));
        Assert.DoesNotContain(gateway.Services.GetRequiredService<IProxyStateLookup>().GetRoutes(), route => route.Config.RouteId == "late");
        Assert.Equal("a1", await WelcomeAsync(gateway, "/chat/late"));
        Assert.DoesNotContain(logs.Records, r => r.Message.Contains("reloaded and applied", StringComparison.Ordinal));

        // The same edit with the value mended applies whole: the route goes live.
        edit["Gateway"]!["WebSocketPolicies"]!["test"]!["KeepAlive"]!["Interval"] = "00:00:20";
        await gateway.RewriteConfigAsync(edit.ToJsonString());
        await CountedAsync(gateway, reloads, Success);
        await Retry.Eventually(async () => Assert.Equal("b1", await WelcomeAsync(gateway, "/chat/late")), TimeSpan.FromSeconds(10));
    }

    /// <summary>YARP ignores keys it does not know; on reload such a key is refused like at startup, and the running routes stay.</summary>
    [Fact]
    public async Task A_reload_with_an_unknown_ReverseProxy_key_is_refused()
    {
        await using var a = await Backend.StartAsync("a1");
        await using var b = await Backend.StartAsync("b1");
        var logs = new CapturingLoggerProvider();
        var config = GatewayServer.Config(GatewayServer.Proxy([("chat", "/chat", "a")], [("a", [a]), ("b", [b])]));
        await using var gateway = await GatewayServer.StartAsync(config, services => services.AddSingleton<ILoggerProvider>(logs));
        var reloads = await ReloadsAsync(gateway);

        var edit = (JsonObject)JsonNode.Parse(await File.ReadAllTextAsync(gateway.ConfigPath))!;
        edit["ReverseProxy"]!["Routes"]!["chat"]!["ClusterId"] = "b";
        edit["ReverseProxy"]!["Clusters"]!["b"]!["HealthCheck"] = new JsonObject { ["Active"] = new JsonObject { ["Intervall"] = "5s" } };
        await gateway.RewriteConfigAsync(edit.ToJsonString());
        await CountedAsync(gateway, reloads, Failure);
        var refused = Assert.Single(logs.Records, r => r.Message.Contains("nothing of the edit applied", StringComparison.Ordinal));
        Assert.Contains("ReverseProxy:Clusters:b:HealthCheck:Active:Intervall: unknown key", refused.Message);
        await Task.Delay(TimeSpan.FromSeconds(1));
        Assert.Equal("a1", await WelcomeAsync(gateway));
    }

    private const string Success = "success";
    private const string Failure = "failure";

    /// <summary><c>gateway_config_reloads_total</c> by result, from one scrape of /metrics.</summary>
    private static async Task<Dictionary<string, double>> ReloadsAsync(GatewayServer gateway)
    {
        var scrape = await MetricsScrape.FetchAsync(gateway);
        return new Dictionary<string, double>
        {
            [Success] = scrape.Value("gateway_config_reloads_total", ("result", Success)),
            [Failure] = scrape.Value("gateway_config_reloads_total", ("result", Failure)),
        };
    }

    /// <summary>
    /// Waits (bounded) until the gateway handled the edit: the counter for <paramref name="result"/> moved past
    /// <paramref name="before"/>. Only then is the routing state worth asserting; a fixed sleep would also pass if
    /// the reload never ran. The other result is not required to stay put: on a loaded machine one write can be
    /// read twice (half-written, then whole), which the gateway is built to survive.
    /// </summary>
    private static Task<Dictionary<string, double>> CountedAsync(GatewayServer gateway, Dictionary<string, double> before, string result) =>
        Retry.Eventually(async () =>
        {
            var now = await ReloadsAsync(gateway);
            Assert.True(now[result] > before[result], $"no {result} counted: {now[result]} reload(s), {before[result]} before");
            return now;
        }, TimeSpan.FromSeconds(10));

    private static async Task<string> WelcomeAsync(GatewayServer gateway, string path = "/chat/lobby")
    {
        using var socket = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, path, cookies: new CookieContainer());
        var backend = await WebSocketClient.ReceiveWelcomeBackendAsync(socket);
        await WebSocketClient.CloseAsync(socket);
        return backend;
    }
}
