using System.Text.Json.Nodes;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Handshake;

/// <summary>Gateway configurations for the handshake tests: routes to a <see cref="ProbeBackend"/>, each naming a policy.</summary>
public static class HandshakeGateway
{
    /// <summary>The ReverseProxy section: one cluster on the probe, a route per (id, path prefix, policy or none).</summary>
    public static JsonObject Proxy(ProbeBackend backend, params (string Route, string Prefix, string? Policy)[] routes)
    {
        var routeObject = new JsonObject();
        foreach (var (route, prefix, policy) in routes)
        {
            var r = new JsonObject
            {
                ["ClusterId"] = "probe",
                ["Match"] = new JsonObject { ["Path"] = prefix.TrimEnd('/') + "/{**rest}" },
            };
            if (policy is not null)
            {
                r["Metadata"] = new JsonObject { ["WebSocketPolicy"] = policy };
            }
            routeObject[route] = r;
        }
        return new JsonObject
        {
            ["Routes"] = routeObject,
            ["Clusters"] = new JsonObject
            {
                ["probe"] = new JsonObject
                {
                    ["Destinations"] = new JsonObject { ["probe"] = new JsonObject { ["Address"] = backend.Address.ToString() } },
                },
            },
        };
    }

    /// <summary>A full gateway configuration with <paramref name="policies"/> under Gateway:WebSocketPolicies.</summary>
    public static JsonObject Config(JsonObject proxy, JsonObject policies, JsonArray? certificates = null, Action<JsonObject>? gateway = null)
    {
        var config = GatewayServer.Config(proxy, certificates);
        var section = (JsonObject)config["Gateway"]!;
        section["WebSocketPolicies"] = policies;
        gateway?.Invoke(section);
        return config;
    }

    public static JsonArray Strings(params string[] values) => new(values.Select(v => (JsonNode?)JsonValue.Create(v)).ToArray());

    /// <summary>Retries <paramref name="attempt"/> until it stops throwing or <paramref name="within"/> passes.</summary>
    public static Task Eventually(Func<Task> attempt, TimeSpan within) => Retry.Eventually(attempt, within);
}
