using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Listeners;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Tests.Infrastructure;

/// <summary>
/// The real gateway (the same code path as Program.Main) started in-process from a configuration file written
/// for the test, on loopback ports the system chooses.
/// </summary>
public sealed class GatewayServer : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly string _directory;

    private GatewayServer(WebApplication app, string directory, string configPath)
    {
        _app = app;
        _directory = directory;
        ConfigPath = configPath;
        var bound = app.Services.GetRequiredService<BoundListeners>();
        foreach (var (listener, endPoint) in bound.All)
        {
            if (listener.WarmupOnly)
            {
                continue; // a private twin of a shared listener (ReusePort), which only the warm-up uses
            }
            var baseAddress = new Uri($"{(listener.IsAdmin ? "http" : listener.WebSocketScheme)}://127.0.0.1:{endPoint!.Port}/");
            Listeners[listener.Name] = baseAddress;
        }
    }

    public string ConfigPath { get; }

    public Dictionary<string, Uri> Listeners { get; } = new(StringComparer.OrdinalIgnoreCase);

    public Uri Ws => Listeners["ws"];

    public Uri Wss => Listeners["wss"];

    public Uri Admin => Listeners["admin"];

    /// <summary>The https:// twin of the wss listener, for plain HTTP requests.</summary>
    public Uri Https => new UriBuilder(Wss) { Scheme = "https" }.Uri;

    public Uri Http => new UriBuilder(Ws) { Scheme = "http" }.Uri;

    public IServiceProvider Services => _app.Services;

    /// <summary>A gateway config with a ws and a wss listener on port 0, the given TLS certificates, and <paramref name="reverseProxy"/>.</summary>
    public static JsonObject Config(JsonObject reverseProxy, JsonArray? certificates = null) => new()
    {
        ["Logging"] = new JsonObject { ["LogLevel"] = new JsonObject { ["Default"] = "Warning", ["Yarp"] = "Warning" } },
        ["Gateway"] = new JsonObject
        {
            ["Listeners"] = new JsonObject
            {
                ["ws"] = new JsonObject { ["Address"] = "127.0.0.1", ["Port"] = 0 },
                ["wss"] = new JsonObject { ["Address"] = "127.0.0.1", ["Port"] = 0, ["Tls"] = true },
            },
            ["Tls"] = new JsonObject { ["Certificates"] = certificates ?? new JsonArray() },
            ["Admin"] = new JsonObject { ["Address"] = "127.0.0.1", ["Port"] = 0 },
            ["ShutdownTimeout"] = "00:00:02",
            // Shutdown at once, as tests expect; the drain sequence's own tests set their own (Delay + Period must fit).
            ["Drain"] = new JsonObject { ["Delay"] = "00:00:00", ["Period"] = "00:00:00" },
        },
        ["ReverseProxy"] = reverseProxy,
    };

    /// <summary>ReverseProxy section: one route per (path prefix → cluster), one cluster per backend list.</summary>
    public static JsonObject Proxy(IEnumerable<(string Route, string PathPrefix, string Cluster)> routes, IEnumerable<(string Cluster, Backend[] Backends)> clusters, Action<string, JsonObject>? configureCluster = null)
    {
        var routeObject = new JsonObject();
        foreach (var (route, prefix, cluster) in routes)
        {
            routeObject[route] = new JsonObject
            {
                ["ClusterId"] = cluster,
                ["Match"] = new JsonObject { ["Path"] = prefix.TrimEnd('/') + "/{**rest}" },
            };
        }
        var clusterObject = new JsonObject();
        foreach (var (cluster, backends) in clusters)
        {
            var destinations = new JsonObject();
            foreach (var backend in backends)
            {
                destinations[backend.Instance] = new JsonObject { ["Address"] = backend.Address.ToString() };
            }
            var c = new JsonObject { ["Destinations"] = destinations };
            configureCluster?.Invoke(cluster, c);
            clusterObject[cluster] = c;
        }
        return new JsonObject { ["Routes"] = routeObject, ["Clusters"] = clusterObject };
    }

    /// <param name="configureServices">Replaces or adds services after the gateway's own (a fake clock, a log capture).</param>
    /// <param name="place">Writes the file's text somewhere under the directory and returns its path (a Kubernetes-style mount).</param>
    public static async Task<GatewayServer> StartAsync(JsonObject config, Action<IServiceCollection>? configureServices = null,
        Func<string, string, string>? place = null)
    {
        var directory = Directory.CreateTempSubdirectory("gateway-test-").FullName;
        var path = Path.Combine(directory, "gateway.json");
        config = (JsonObject)config.DeepClone();
        var gateway = (JsonObject)config["Gateway"]!;
        gateway["DataProtection"] ??= new JsonObject { ["KeyDirectory"] = Path.Combine(directory, "keys") };
        // Seconds of CPU-heavy sessions at every start would slow the suite and disturb timing tests; Warmup/ tests turn it on.
        gateway["Warmup"] ??= new JsonObject { ["Enabled"] = false };
        // Shutdown at once, as before the drain sequence: tests that are about the drain set their own.
        gateway["Drain"] ??= new JsonObject { ["Delay"] = "00:00:00", ["Period"] = "00:00:00" };
        var text = config.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
        if (place is null)
        {
            await File.WriteAllTextAsync(path, text);
        }
        else
        {
            path = place(directory, text);
        }
        var app = GatewayApplication.Build(["--config", path], configureServices: configureServices);
        await GatewayApplication.StartAsync(app);
        return new GatewayServer(app, directory, path);
    }

    /// <summary>Starts a graceful shutdown (as SIGTERM does) and returns when it has finished.</summary>
    public async Task StopAsync(TimeSpan within)
    {
        using var timeout = new CancellationTokenSource(within);
        await _app.StopAsync(timeout.Token);
    }

    /// <summary>Rewrites the configuration file (the gateway reloads routes and clusters from it).</summary>
    public Task RewriteConfigAsync(string text) => File.WriteAllTextAsync(ConfigPath, text);

    public async ValueTask DisposeAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        try
        {
            await _app.StopAsync(timeout.Token);
        }
        finally
        {
            await _app.DisposeAsync();
            try
            {
                Directory.Delete(_directory, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
