using System.Text.Json.Nodes;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Relay;

/// <summary>Gateway configs for relay tests: one route <c>/raw/...</c> to one backend under a policy named "test".</summary>
internal static class RelayConfig
{
    /// <param name="lean">Gateway:LeanUpgrades: HTTP/1.1 upgrades on the lean path (the default) or on Kestrel's.</param>
    /// <param name="socketTakeover">Gateway:SocketTakeover: the gateway's own socket transport, whose sockets plain ws tunnels on the lean path take over.</param>
    public static JsonObject Build(Uri backend, JsonObject policy, string? activityTimeout = null, string path = "/raw", bool lean = true,
        bool socketTakeover = false)
    {
        var cluster = new JsonObject
        {
            ["Destinations"] = new JsonObject { ["d1"] = new JsonObject { ["Address"] = backend.ToString() } },
        };
        if (activityTimeout is not null)
        {
            cluster["HttpRequest"] = new JsonObject { ["ActivityTimeout"] = activityTimeout };
        }
        var proxy = new JsonObject
        {
            ["Routes"] = new JsonObject
            {
                ["raw"] = new JsonObject
                {
                    ["ClusterId"] = "raw",
                    ["Match"] = new JsonObject { ["Path"] = path + "/{**rest}" },
                    ["Metadata"] = new JsonObject { ["WebSocketPolicy"] = "test" },
                },
            },
            ["Clusters"] = new JsonObject { ["raw"] = cluster },
        };
        var config = GatewayServer.Config(proxy);
        config["Gateway"]!["WebSocketPolicies"] = new JsonObject { ["test"] = policy };
        config["Gateway"]!["LeanUpgrades"] = lean;
        config["Gateway"]!["SocketTakeover"] = socketTakeover;
        return config;
    }

    public static JsonObject KeepAlive(string interval, string timeout, bool backend = true) => new()
    {
        ["KeepAlive"] = new JsonObject { ["Interval"] = interval, ["Timeout"] = timeout, ["Backend"] = backend },
    };
}
