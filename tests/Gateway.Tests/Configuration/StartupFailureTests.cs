using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Configuration;

/// <summary>The built program, started with a bad configuration, exits non-zero with one line naming file and key.</summary>
public sealed class StartupFailureTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("gateway-bad-config-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static JsonObject ValidConfig() => new()
    {
        ["Gateway"] = new JsonObject
        {
            ["Listeners"] = new JsonObject { ["ws"] = new JsonObject { ["Address"] = "127.0.0.1", ["Port"] = 0 } },
            ["Admin"] = new JsonObject { ["Enabled"] = false },
        },
        ["ReverseProxy"] = new JsonObject
        {
            ["Routes"] = new JsonObject { ["chat"] = new JsonObject { ["ClusterId"] = "chat", ["Match"] = new JsonObject { ["Path"] = "/chat/{**room}" } } },
            ["Clusters"] = new JsonObject
            {
                ["chat"] = new JsonObject { ["Destinations"] = new JsonObject { ["one"] = new JsonObject { ["Address"] = "http://127.0.0.1:5999/" } } },
            },
        },
    };

    public static TheoryData<string, string> BadConfigs() => new()
    {
        { "unknown-cluster", "ReverseProxy:Routes:chat:ClusterId: cluster 'nope' is not defined" },
        { "bad-url", "ReverseProxy:Clusters:chat:Destinations:one:Address: 'not a url' is not an absolute http:// or https:// URL" },
        { "missing-certificate", "Gateway:Tls:Certificates:0:Path: certificate file" },
        { "unknown-key", "Gateway:Listeners:ws:Prot: unknown key" },
        { "bad-port", "Gateway:Listeners:ws:Port: 'eighty' is not a whole number" },
        { "pfx-password-variable", "Gateway:Tls:Certificates:0:PasswordEnvironmentVariable: environment variable 'GATEWAY_TEST_UNSET_PASSWORD' is not set" },
        { "bad-policy", "ReverseProxy: No matching ILoadBalancingPolicy found for the load balancing policy 'Fastest'" },
        { "bad-otlp-endpoint", "Gateway:Telemetry:Otlp:Endpoint: 'collector:4317' is not an absolute http:// or https:// URL" },
        { "bad-otlp-protocol", "Gateway:Telemetry:Otlp:Protocol: 'udp' is not grpc or http/protobuf" },
        // YARP reads the keys it knows and ignores the rest: each of these ran with defaults before.
        { "route-typo", "ReverseProxy:Routes:chat:Mtach: unknown key (expected one of: " },
        { "cluster-typo", "ReverseProxy:Clusters:chat:LoadBalancingPolicyy: unknown key" },
        { "health-typo", "ReverseProxy:Clusters:chat:HealthCheck:Active:Intervall: unknown key" },
        { "destination-typo", "ReverseProxy:Clusters:chat:Destinations:one:Adress: unknown key" },
        { "bad-duration", "Gateway:ShutdownTimeout: '30 seconds' is not a duration" },
        { "bad-access-log-field", "Gateway:AccessLog:Fields:1: 'Room' is not an access log field (one of: Event, Start," },
        { "bad-access-log-format", "Gateway:AccessLog:Format: 'xml' is not one of Text, Json" },
        { "missing-signing-key", "Gateway:WebSocketPolicies:chat:Identity:SigningKeys:0: cannot read '" },
    };

    [Theory]
    [MemberData(nameof(BadConfigs))]
    public async Task Bad_configuration_exits_2_with_one_line_naming_file_and_key(string mistake, string expected)
    {
        var config = ValidConfig();
        var cluster = config["ReverseProxy"]!["Clusters"]!["chat"]!.AsObject();
        var listener = config["Gateway"]!["Listeners"]!["ws"]!.AsObject();
        switch (mistake)
        {
            case "unknown-cluster":
                config["ReverseProxy"]!["Routes"]!["chat"]!["ClusterId"] = "nope";
                break;
            case "bad-url":
                cluster["Destinations"]!["one"]!["Address"] = "not a url";
                break;
            case "missing-certificate":
                config["Gateway"]!["Listeners"]!["wss"] = new JsonObject { ["Address"] = "127.0.0.1", ["Port"] = 0, ["Tls"] = true };
                config["Gateway"]!["Tls"] = new JsonObject { ["Certificates"] = new JsonArray(new JsonObject { ["Path"] = "no-such.pem", ["KeyPath"] = "no-such.key" }) };
                break;
            case "pfx-password-variable":
                File.WriteAllText(Path.Combine(_directory, "server.pfx"), "not really a pfx");
                config["Gateway"]!["Listeners"]!["wss"] = new JsonObject { ["Address"] = "127.0.0.1", ["Port"] = 0, ["Tls"] = true };
                config["Gateway"]!["Tls"] = new JsonObject { ["Certificates"] = new JsonArray(new JsonObject { ["Path"] = "server.pfx", ["PasswordEnvironmentVariable"] = "GATEWAY_TEST_UNSET_PASSWORD" }) };
                break;
            case "unknown-key":
                listener["Prot"] = 80;
                break;
            case "bad-port":
                listener["Port"] = "eighty";
                break;
            case "bad-policy":
                cluster["LoadBalancingPolicy"] = "Fastest";
                break;
            case "bad-otlp-endpoint":
                config["Gateway"]!["Telemetry"] = new JsonObject { ["Otlp"] = new JsonObject { ["Endpoint"] = "collector:4317" } };
                break;
            case "route-typo":
                config["ReverseProxy"]!["Routes"]!["chat"]!["Mtach"] = new JsonObject { ["Path"] = "/other" };
                break;
            case "cluster-typo":
                cluster["LoadBalancingPolicyy"] = "RoundRobin";
                break;
            case "health-typo":
                cluster["HealthCheck"] = new JsonObject { ["Active"] = new JsonObject { ["Enabled"] = true, ["Intervall"] = "00:00:05" } };
                break;
            case "destination-typo":
                cluster["Destinations"]!["one"]!["Adress"] = "http://127.0.0.1:5998/";
                break;
            case "bad-duration":
                config["Gateway"]!["ShutdownTimeout"] = "30 seconds";
                break;
            case "bad-access-log-field":
                config["Gateway"]!["AccessLog"] = new JsonObject { ["Fields"] = new JsonArray("Path", "Room") };
                break;
            case "bad-access-log-format":
                config["Gateway"]!["AccessLog"] = new JsonObject { ["Format"] = "xml" };
                break;
            case "missing-signing-key":
                config["Gateway"]!["WebSocketPolicies"] = new JsonObject
                {
                    ["chat"] = new JsonObject
                    {
                        ["Identity"] = new JsonObject
                        {
                            ["SigningKeys"] = new JsonArray("keys/idp.pem"),
                            ["Issuer"] = "https://id.example.com",
                            ["Audience"] = "chat",
                        },
                    },
                };
                break;
            case "bad-otlp-protocol":
                config["Gateway"]!["Telemetry"] = new JsonObject { ["Otlp"] = new JsonObject { ["Endpoint"] = "http://127.0.0.1:4318", ["Protocol"] = "udp" } };
                break;
        }
        var path = Path.Combine(_directory, $"{mistake}.json");
        await File.WriteAllTextAsync(path, config.ToJsonString());

        var (exitCode, _, stderr) = await GatewayProcess.RunAsync(TimeSpan.FromSeconds(30), "--config", path);

        Assert.Equal(2, exitCode);
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith($"gateway: error: {path}: ", line);
        Assert.Contains(expected, line);
    }

    [Fact]
    public async Task Invalid_json_names_the_file_and_the_position()
    {
        var path = Path.Combine(_directory, "broken.json");
        await File.WriteAllTextAsync(path, "{ \"Gateway\": { \"Listeners\": [ }");
        var (exitCode, _, stderr) = await GatewayProcess.RunAsync(TimeSpan.FromSeconds(30), "--config", path);
        Assert.Equal(2, exitCode);
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith($"gateway: error: {path}: invalid JSON:", line);
        Assert.Contains("LineNumber: 0", line);
    }

    [Fact]
    public async Task Missing_configuration_file_is_named()
    {
        var path = Path.Combine(_directory, "absent.json");
        var (exitCode, _, stderr) = await GatewayProcess.RunAsync(TimeSpan.FromSeconds(30), "--config", path);
        Assert.Equal(2, exitCode);
        Assert.Equal($"gateway: error: {path}: configuration file not found (give one with --config PATH or GATEWAY_CONFIG)", stderr.Trim());
    }

    [Fact]
    public async Task A_busy_port_exits_3_naming_the_listener()
    {
        using var squatter = new TcpListener(IPAddress.Loopback, 0);
        squatter.Start();
        var port = ((IPEndPoint)squatter.LocalEndpoint).Port;
        var config = ValidConfig();
        config["Gateway"]!["Listeners"]!["ws"]!["Port"] = port;
        var path = Path.Combine(_directory, "busy.json");
        await File.WriteAllTextAsync(path, config.ToJsonString());

        var (exitCode, _, stderr) = await GatewayProcess.RunAsync(TimeSpan.FromSeconds(30), "--config", path);

        Assert.Equal(3, exitCode);
        var errors = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        var line = Assert.Single(errors);
        Assert.Equal($"gateway: error: {path}: Gateway:Listeners:ws: cannot listen on port {port}: the address is already in use", line);
    }
}
