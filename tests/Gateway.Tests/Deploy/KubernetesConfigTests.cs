using System.Text;
using Gateway.Configuration;
using Microsoft.Extensions.Configuration;

namespace Gateway.Tests.Deploy;

/// <summary>
/// The gateway.json inside deploy/kubernetes/configmap.yaml passes the gateway's own load-time validation (unknown
/// keys, values) with the Deployment's environment on top, and says what the manifests rely on. The manifests
/// themselves are checked against the Kubernetes schemas by .ci/validate-kubernetes.sh.
/// </summary>
public sealed class KubernetesConfigTests
{
    private const string TokenVariable = "GATEWAY_ADMIN_TOKEN";

    [Fact]
    public void The_configmap_configuration_loads_with_the_deployment_environment()
    {
        var json = ExtractGatewayJson(File.ReadAllLines(Path.Combine(RepositoryRoot(), "deploy", "kubernetes", "configmap.yaml")));
        using var stream = new MemoryStream(Encoding.UTF8.GetBytes(json));
        var configuration = new ConfigurationBuilder()
            .AddJsonStream(stream)
            // What deployment.yaml's env sets (the environment overrides the file).
            .AddInMemoryCollection(new Dictionary<string, string?>
            {
                ["Gateway:Listeners:ws:Port"] = "8080",
                ["Gateway:Listeners:wss:Port"] = "8443",
            })
            .Build();
        var options = GatewayOptionsLoader.Load(configuration, "/etc/gateway/config");

        Assert.Equal(8080, options.Listeners["ws"].Port);
        Assert.Equal(8443, options.Listeners["wss"].Port);
        Assert.True(options.Listeners["wss"].Tls);
        // The kubelet probes the pod IP, so the admin listener cannot be loopback-only.
        Assert.Equal("0.0.0.0", options.Admin.Address);
        Assert.Equal(9901, options.Admin.Port);
        Assert.Equal(TokenVariable, options.Admin.TokenEnvironmentVariable);
        Assert.Equal("/var/lib/gateway/keys", options.DataProtection.KeyDirectory);
        Assert.Equal(["/etc/gateway/certs/tls.crt"], options.Tls.Certificates.Select(c => c.Path));
        Assert.Equal(["/etc/gateway/certs/tls.key"], options.Tls.Certificates.Select(c => c.KeyPath));
        // deployment.yaml: readiness 2 s x 2 < Delay; Delay + Period <= ShutdownTimeout < terminationGracePeriodSeconds (45).
        Assert.True(options.Drain.Delay > TimeSpan.FromSeconds(4));
        Assert.True(options.ShutdownTimeout >= options.Drain.Delay + options.Drain.Period);
        Assert.True(options.ShutdownTimeout < TimeSpan.FromSeconds(45));
        Assert.Equal("chat", configuration["ReverseProxy:Routes:chat:ClusterId"]);
        Assert.NotEmpty(configuration.GetSection("ReverseProxy:Clusters:chat:Destinations").GetChildren());
    }

    [Fact]
    public void The_extraction_sees_a_bad_key_in_the_embedded_file()
    {
        // Guards the extraction above: a typo in the embedded JSON must reach the loader, not be cut off.
        string[] yaml =
        [
            "data:",
            "  gateway.json: |",
            "    {",
            "      \"Gateway\": { \"Admin\": { \"Adress\": \"0.0.0.0\" } }",
            "    }",
        ];
        using var stream = new MemoryStream(Encoding.UTF8.GetBytes(ExtractGatewayJson(yaml)));
        var configuration = new ConfigurationBuilder().AddJsonStream(stream).Build();
        var error = Assert.Throws<GatewayConfigurationException>(() => GatewayOptionsLoader.Load(configuration, "/etc/gateway/config"));
        Assert.Equal("Gateway:Admin:Adress", error.Key);
    }

    /// <summary>The block scalar under <c>gateway.json: |</c>: the following lines indented deeper than the key.</summary>
    private static string ExtractGatewayJson(IReadOnlyList<string> lines)
    {
        var start = lines.ToList().FindIndex(l => l.TrimStart() == "gateway.json: |");
        Assert.True(start >= 0, "configmap.yaml has no 'gateway.json: |' block");
        var keyIndent = lines[start].Length - lines[start].TrimStart().Length;
        var body = new StringBuilder();
        for (var i = start + 1; i < lines.Count; i++)
        {
            var line = lines[i];
            if (line.Trim().Length > 0 && line.Length - line.TrimStart().Length <= keyIndent)
            {
                break;
            }
            body.AppendLine(line);
        }
        return body.ToString();
    }

    private static string RepositoryRoot()
    {
        var directory = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(directory, "Gateway.sln")))
        {
            directory = Path.GetDirectoryName(directory) ?? throw new InvalidOperationException("repository root not found");
        }
        return directory;
    }
}
