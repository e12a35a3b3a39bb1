using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Configuration;

/// <summary><c>--check-config</c>: the built program validates the file as a start would, and binds nothing.</summary>
public sealed class CheckConfigTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("gateway-check-config-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    /// <summary>A file whose every port (listeners and admin) is held by this test: a start would fail with exit 3.</summary>
    private static JsonObject Config(int takenPort, int takenAdminPort) => new()
    {
        ["Gateway"] = new JsonObject
        {
            ["Listeners"] = new JsonObject { ["ws"] = new JsonObject { ["Address"] = "127.0.0.1", ["Port"] = takenPort } },
            ["Admin"] = new JsonObject { ["Address"] = "127.0.0.1", ["Port"] = takenAdminPort },
            ["ShutdownTimeout"] = "45s",
        },
        ["ReverseProxy"] = new JsonObject
        {
            ["Routes"] = new JsonObject { ["chat"] = new JsonObject { ["ClusterId"] = "chat", ["Match"] = new JsonObject { ["Path"] = "/chat/{**room}" } } },
            ["Clusters"] = new JsonObject
            {
                ["chat"] = new JsonObject
                {
                    ["Destinations"] = new JsonObject { ["one"] = new JsonObject { ["Address"] = "http://127.0.0.1:5999/" } },
                    ["HealthCheck"] = new JsonObject { ["Active"] = new JsonObject { ["Enabled"] = true, ["Interval"] = "5s", ["Timeout"] = "2s" } },
                },
            },
        },
    };

    [Fact]
    public async Task A_valid_file_exits_0_with_one_line_naming_it_and_binds_nothing()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        using var admin = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        admin.Start();
        var path = Path.Combine(_directory, "ok.json");
        await File.WriteAllTextAsync(path, Config(((IPEndPoint)listener.LocalEndpoint).Port, ((IPEndPoint)admin.LocalEndpoint).Port).ToJsonString());

        var (exitCode, stdout, stderr) = await GatewayProcess.RunAsync(TimeSpan.FromSeconds(30), "--check-config", "--config", path);

        Assert.True(exitCode == 0, $"exit {exitCode}: {stderr}");
        Assert.Contains($"gateway: {path}: configuration ok", stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal(string.Empty, stderr.Trim());
    }

    public static TheoryData<string, string> Mistakes() => new()
    {
        { "route-typo", "ReverseProxy:Routes:chat:Mtach: unknown key" },
        { "yarp-validation", "ReverseProxy: No matching ILoadBalancingPolicy found for the load balancing policy 'Fastest'" },
        { "garbage-certificate", "Gateway:Tls:Certificates:0" },
        { "gateway-value", "Gateway:ShutdownTimeout: 'soon' is not a duration" },
    };

    [Theory]
    [MemberData(nameof(Mistakes))]
    public async Task A_bad_file_exits_2_with_one_line_naming_file_and_key(string mistake, string expected)
    {
        var config = Config(0, 0);
        var cluster = config["ReverseProxy"]!["Clusters"]!["chat"]!.AsObject();
        switch (mistake)
        {
            case "route-typo":
                config["ReverseProxy"]!["Routes"]!["chat"]!["Mtach"] = new JsonObject { ["Path"] = "/other" };
                break;
            case "yarp-validation":
                cluster["LoadBalancingPolicy"] = "Fastest";
                break;
            case "garbage-certificate":
                await File.WriteAllTextAsync(Path.Combine(_directory, "server.pem"), "-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n");
                await File.WriteAllTextAsync(Path.Combine(_directory, "server.key"), "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n");
                config["Gateway"]!["Listeners"]!["wss"] = new JsonObject { ["Address"] = "127.0.0.1", ["Port"] = 0, ["Tls"] = true };
                config["Gateway"]!["Tls"] = new JsonObject { ["Certificates"] = new JsonArray(new JsonObject { ["Path"] = "server.pem", ["KeyPath"] = "server.key" }) };
                break;
            case "gateway-value":
                config["Gateway"]!["ShutdownTimeout"] = "soon";
                break;
        }
        var path = Path.Combine(_directory, $"{mistake}.json");
        await File.WriteAllTextAsync(path, config.ToJsonString());

        var (exitCode, stdout, stderr) = await GatewayProcess.RunAsync(TimeSpan.FromSeconds(30), "--check-config", "--config", path);

        Assert.Equal(2, exitCode);
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith($"gateway: error: {path}: ", line);
        Assert.Contains(expected, line);
        Assert.DoesNotContain("configuration ok", stdout);
    }

    /// <summary>README's complete chat example is a file the gateway accepts, with a certificate and key at its paths.</summary>
    [Fact]
    public async Task The_README_chat_service_example_passes()
    {
        var readme = await File.ReadAllTextAsync(Path.Combine(DemoConfig.RepositoryRoot, "README.md"));
        var section = readme[readme.IndexOf("### A chat service at the edge: a complete example", StringComparison.Ordinal)..];
        var start = section.IndexOf("```json\n", StringComparison.Ordinal) + "```json\n".Length;
        var json = section[start..section.IndexOf("\n```", start, StringComparison.Ordinal)];
        var path = Path.Combine(_directory, "chat.json");
        await File.WriteAllTextAsync(path, json);

        Directory.CreateDirectory(Path.Combine(_directory, "keys"));
        Directory.CreateDirectory(Path.Combine(_directory, "certs"));
        using var idp = RSA.Create(2048);
        await File.WriteAllTextAsync(Path.Combine(_directory, "keys", "id-example-com.pem"), idp.ExportSubjectPublicKeyInfoPem());
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=chat.example.com", key, HashAlgorithmName.SHA256);
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddMinutes(-1), DateTimeOffset.UtcNow.AddDays(30));
        await File.WriteAllTextAsync(Path.Combine(_directory, "certs", "chat.example.com.pem"), certificate.ExportCertificatePem());
        await File.WriteAllTextAsync(Path.Combine(_directory, "certs", "chat.example.com.key"), key.ExportPkcs8PrivateKeyPem());

        var (exitCode, stdout, stderr) = await GatewayProcess.RunAsync(TimeSpan.FromSeconds(30), "--check-config", "--config", path);

        Assert.True(exitCode == 0, $"exit {exitCode}: {stderr}");
        Assert.Contains($"gateway: {path}: configuration ok", stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }
}
