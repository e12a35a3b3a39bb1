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
        var options = GatewayConfiguration.Load(configuration, "/etc/gateway/config");

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
        // YARP's section has no key YARP would ignore.
        ReverseProxyKeys.Check(configuration.GetSection("ReverseProxy"));
    }

    /// <summary>An idle wss tunnel's RSS (bench/RESULTS.md) and what the process needs besides tunnels.</summary>
    private const double KilobytesPerWssTunnel = 52;
    private const double BaseMebibytes = 256;

    /// <summary>
    /// The example's memory limit holds the tunnels its policies admit: MaxConnections x 52 KB + 256 MiB within 80 %
    /// of the limit. The old example (1 GiB against 50,000) ran out of memory near 15,000-20,000 tunnels.
    /// </summary>
    [Fact]
    public void The_memory_limit_holds_MaxConnections_at_the_measured_KB_per_tunnel()
    {
        var root = RepositoryRoot();
        var configuration = new ConfigurationBuilder()
            .AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes(ExtractGatewayJson(File.ReadAllLines(Path.Combine(root, "deploy", "kubernetes", "configmap.yaml"))))))
            .Build();
        var policies = configuration.GetSection("Gateway:WebSocketPolicies").GetChildren().ToList();
        Assert.NotEmpty(policies);
        var connections = policies.Sum(policy => policy.GetValue<int?>("Limits:MaxConnections") ?? throw new Xunit.Sdk.XunitException($"policy {policy.Key} has no MaxConnections: memory unbounded"));

        var deployment = File.ReadAllLines(Path.Combine(root, "deploy", "kubernetes", "deployment.yaml"));
        var limits = Array.FindIndex(deployment, line => line.Trim() == "limits:");
        Assert.True(limits >= 0, "deployment.yaml sets no resource limits");
        var memory = deployment.Skip(limits + 1).TakeWhile(line => line.StartsWith(new string(' ', deployment[limits].IndexOf('l') + 2), StringComparison.Ordinal))
            .Select(line => line.Trim()).Single(line => line.StartsWith("memory:", StringComparison.Ordinal))["memory:".Length..].Trim();
        var limitMebibytes = memory.EndsWith("Gi", StringComparison.Ordinal) ? double.Parse(memory[..^2]) * 1024
            : memory.EndsWith("Mi", StringComparison.Ordinal) ? double.Parse(memory[..^2])
            : throw new Xunit.Sdk.XunitException($"memory limit '{memory}' is not in Mi or Gi");

        var needed = connections * KilobytesPerWssTunnel / 1024 + BaseMebibytes;
        Assert.True(needed <= 0.8 * limitMebibytes,
            $"MaxConnections {connections} x {KilobytesPerWssTunnel} KB + {BaseMebibytes} MiB = {needed:F0} MiB exceeds 80 % of the {limitMebibytes} MiB limit");
    }

    /// <summary>
    /// The example runs on a cluster without ReadWriteMany storage (kind, minikube): no RWX claim in the base, and an
    /// affinity that needs no shared key ring (HashCookie).
    /// </summary>
    [Fact]
    public void The_example_needs_no_shared_volume()
    {
        var directory = Path.Combine(RepositoryRoot(), "deploy", "kubernetes");
        var listed = File.ReadAllLines(Path.Combine(directory, "kustomization.yaml"))
            .Select(line => line.Trim()).Where(line => line.StartsWith("- ", StringComparison.Ordinal)).Select(line => line[2..].Trim()).ToList();
        Assert.Contains("deployment.yaml", listed);
        foreach (var file in listed)
        {
            var text = File.ReadAllText(Path.Combine(directory, file));
            Assert.DoesNotContain("kind: PersistentVolumeClaim", text);
            Assert.DoesNotContain("persistentVolumeClaim:", text);
        }
        var configuration = new ConfigurationBuilder()
            .AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes(ExtractGatewayJson(File.ReadAllLines(Path.Combine(directory, "configmap.yaml"))))))
            .Build();
        foreach (var cluster in configuration.GetSection("ReverseProxy:Clusters").GetChildren())
        {
            if (cluster.GetValue("SessionAffinity:Enabled", true))
            {
                Assert.Equal("HashCookie", cluster["SessionAffinity:Policy"]);
            }
        }
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
        var error = Assert.Throws<GatewayConfigurationException>(() => GatewayConfiguration.Load(configuration, "/etc/gateway/config"));
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
