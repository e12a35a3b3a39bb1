using System.Text.Json.Nodes;

namespace Gateway.Tests.Infrastructure;

/// <summary>The shipped <c>config/demo.json</c> as <c>./demo.sh</c> runs it, on ports the system chooses and with the test's backends.</summary>
public static class DemoConfig
{
    public static string RepositoryRoot
    {
        get
        {
            var directory = AppContext.BaseDirectory;
            while (!File.Exists(Path.Combine(directory, "Gateway.sln")))
            {
                directory = Path.GetDirectoryName(directory) ?? throw new InvalidOperationException("repository root not found");
            }
            return directory;
        }
    }

    /// <summary>The demo's HS256 secret, which demo.sh hands to the backends' /demo-token.</summary>
    public static string KeyFile => Path.Combine(RepositoryRoot, "config", "demo-jwt.key");

    public static async Task<JsonObject> LoadAsync(Backend chat1, Backend chat2)
    {
        var demo = (JsonObject)JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(RepositoryRoot, "config", "demo.json")))!;
        var gatewaySection = (JsonObject)demo["Gateway"]!;
        foreach (var (_, listener) in (JsonObject)gatewaySection["Listeners"]!)
        {
            listener!["Address"] = "127.0.0.1";
            listener["Port"] = 0;
        }
        gatewaySection["Admin"]!["Port"] = 0;
        gatewaySection.Remove("DataProtection");
        // The test writes the file elsewhere, so the key file the demo names beside it is named by its full path.
        if (gatewaySection["WebSocketPolicies"]?["chat"]?["Identity"] is JsonObject identity)
        {
            identity["SigningKeys"] = new JsonArray(KeyFile);
        }
        demo["Logging"] = new JsonObject { ["LogLevel"] = new JsonObject { ["Default"] = "Warning" } };
        var destinations = demo["ReverseProxy"]!["Clusters"]!["chat"]!["Destinations"]!;
        destinations["chat-1"]!["Address"] = chat1.Address.ToString();
        destinations["chat-2"]!["Address"] = chat2.Address.ToString();
        return demo;
    }

    /// <summary>The backend arguments demo.sh adds, with the issuer and audience the demo policy checks.</summary>
    public static async Task<string[]> BackendTokenArgsAsync()
    {
        var demo = JsonNode.Parse(await File.ReadAllTextAsync(Path.Combine(RepositoryRoot, "config", "demo.json")))!;
        var identity = demo["Gateway"]!["WebSocketPolicies"]!["chat"]!["Identity"]!;
        return ["--DemoToken:KeyFile", KeyFile, "--DemoToken:Issuer", (string)identity["Issuer"]!, "--DemoToken:Audience", (string)identity["Audience"]!];
    }
}
