using System.Text.Json.Nodes;
using Gateway.Configuration;
using Gateway.LoadBalancing;
using Gateway.Policies;
using Gateway.Proxy;
using Gateway.Tests.Handshake;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Configuration;

namespace Gateway.Tests.LoadBalancing;

/// <summary>The cluster metadata is checked where YARP's configuration is (startup and reload), each mistake named by its key.</summary>
public sealed class ConsistentHashConfigTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("gateway-hash-config-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private static async Task<ClusterConfig> ConfigureAsync(string? policy, Dictionary<string, string>? metadata, SessionAffinityConfig? affinity = null)
    {
        var defaults = new ProxyConfigDefaults(new WebSocketPolicies(InMemoryGatewayOptions.Load()));
        var cluster = new ClusterConfig
        {
            ClusterId = "rooms",
            LoadBalancingPolicy = policy,
            Metadata = metadata,
            SessionAffinity = affinity,
            Destinations = new Dictionary<string, DestinationConfig> { ["one"] = new() { Address = "http://127.0.0.1:5999/" } },
        };
        return await defaults.ConfigureClusterAsync(cluster, CancellationToken.None);
    }

    public static TheoryData<string?, string?, string?, string, string> Mistakes() => new()
    {
        // policy, HashKey, HashBalanceFactor, the key named, what it says
        { "ConsistentHash", null, null, "Metadata:HashKey", "is required with LoadBalancingPolicy 'ConsistentHash'" },
        { "ConsistentHash", "", null, "Metadata:HashKey", "is required" },
        { "ConsistentHash", "room", null, "Metadata:HashKey", "'room' is not SOURCE:NAME, where SOURCE is route, query, header or cookie" },
        { "ConsistentHash", "path:room", null, "Metadata:HashKey", "'path:room' is not SOURCE:NAME" },
        { "ConsistentHash", ":room", null, "Metadata:HashKey", "is not SOURCE:NAME" },
        { "ConsistentHash", "route:", null, "Metadata:HashKey", "'' is not a route value name" },
        { "ConsistentHash", "route:{room}", null, "Metadata:HashKey", "'{room}' is not a route value name" },
        { "ConsistentHash", "header:X Room", null, "Metadata:HashKey", "'X Room' is not a header name (RFC 9110 §5.1: a token)" },
        { "ConsistentHash", "cookie:room;x", null, "Metadata:HashKey", "'room;x' is not a cookie name (RFC 6265 §4.1.1: a token)" },
        { "ConsistentHash", "query:room&x", null, "Metadata:HashKey", "'room&x' is not a query parameter name" },
        { "ConsistentHash", "route:room", "0.9", "Metadata:HashBalanceFactor", "'0.9' is not a number of at least 1 (or 0 for no bound)" },
        { "ConsistentHash", "route:room", "-1", "Metadata:HashBalanceFactor", "is not a number of at least 1" },
        { "ConsistentHash", "route:room", "1,5", "Metadata:HashBalanceFactor", "is not a number of at least 1" },
        { "ConsistentHash", "route:room", "NaN", "Metadata:HashBalanceFactor", "is not a number of at least 1" },
        { "ConsistentHash", "route:room", "Infinity", "Metadata:HashBalanceFactor", "is not a number of at least 1" },
        { "ConsistentHash", "route:room", "high", "Metadata:HashBalanceFactor", "is not a number of at least 1" },
        { "LeastRequests", "route:room", null, "Metadata:HashKey", "applies only with LoadBalancingPolicy 'ConsistentHash' (this cluster's is 'LeastRequests')" },
        { null, null, "1.5", "Metadata:HashBalanceFactor", "applies only with LoadBalancingPolicy 'ConsistentHash' (this cluster's is 'LeastRequests')" },
    };

    [Theory]
    [InlineData("ConsistentHash", "", "must be a secret of at least 16 characters (the same on every replica)")]
    [InlineData("ConsistentHash", "short-secret", "must be a secret of at least 16 characters")]
    [InlineData("ConsistentHash", "                    ", "must be a secret of at least 16 characters")]
    [InlineData("RoundRobin", "0123456789abcdef0123", "applies only with LoadBalancingPolicy 'ConsistentHash' (this cluster's is 'RoundRobin')")]
    public async Task A_bad_seed_is_refused_with_its_key(string policy, string seed, string message)
    {
        var metadata = new Dictionary<string, string> { [ConsistentHashSettings.SeedMetadata] = seed };
        if (policy == "ConsistentHash")
        {
            metadata[ConsistentHashSettings.HashKeyMetadata] = "route:room";
        }

        var error = await Assert.ThrowsAsync<GatewayConfigurationException>(() => ConfigureAsync(policy, metadata));

        Assert.Equal("ReverseProxy:Clusters:rooms:Metadata:HashSeed", error.Key);
        Assert.Contains(message, error.Problem);
    }

    [Theory]
    [InlineData(null, false)]
    [InlineData("0", false)]
    [InlineData("1.25", true)]
    public async Task A_bound_that_can_split_rooms_is_warned_about_at_load(string? factor, bool warned)
    {
        var logs = new CapturingLoggerProvider();
        using var factory = LoggerFactory.Create(builder => builder.AddProvider(logs));
        var defaults = new ProxyConfigDefaults(new WebSocketPolicies(InMemoryGatewayOptions.Load()),
            factory.CreateLogger<ProxyConfigDefaults>());
        var metadata = new Dictionary<string, string> { [ConsistentHashSettings.HashKeyMetadata] = "route:room" };
        if (factor is not null)
        {
            metadata[ConsistentHashSettings.BalanceFactorMetadata] = factor;
        }
        await defaults.ConfigureClusterAsync(new ClusterConfig
        {
            ClusterId = "rooms",
            LoadBalancingPolicy = "ConsistentHash",
            Metadata = metadata,
            Destinations = new Dictionary<string, DestinationConfig> { ["one"] = new() { Address = "http://127.0.0.1:5999/" } },
        }, CancellationToken.None);

        var warnings = logs.Lines.Where(line => line.Id.Id == 801).ToArray();
        Assert.Equal(warned, warnings.Length == 1);
        if (warned)
        {
            Assert.Contains("Cluster rooms: HashBalanceFactor 1.25 is on", warnings[0].Message);
        }
    }

    [Theory]
    [MemberData(nameof(Mistakes))]
    public async Task A_bad_value_is_refused_with_its_key(string? policy, string? hashKey, string? factor, string key, string message)
    {
        var metadata = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        if (hashKey is not null)
        {
            metadata[ConsistentHashSettings.HashKeyMetadata] = hashKey;
        }
        if (factor is not null)
        {
            metadata[ConsistentHashSettings.BalanceFactorMetadata] = factor;
        }

        var error = await Assert.ThrowsAsync<GatewayConfigurationException>(() => ConfigureAsync(policy, metadata));

        Assert.Equal($"ReverseProxy:Clusters:rooms:{key}", error.Key);
        Assert.Contains(message, error.Problem);
    }

    [Theory]
    [InlineData("ConsistentHash", "route:room", null)]
    [InlineData("consistenthash", "ROUTE:room_id", "0")]
    [InlineData("ConsistentHash", "query:room", "1")]
    [InlineData("ConsistentHash", "header:X-Chat-Room", "1.25")]
    [InlineData("ConsistentHash", "cookie:room", "3")]
    public async Task Good_values_load_and_the_cluster_has_no_affinity_unless_it_says_so(string policy, string hashKey, string? factor)
    {
        var metadata = new Dictionary<string, string> { [ConsistentHashSettings.HashKeyMetadata] = hashKey };
        if (factor is not null)
        {
            metadata[ConsistentHashSettings.BalanceFactorMetadata] = factor;
        }

        var cluster = await ConfigureAsync(policy, metadata);

        Assert.Equal(policy, cluster.LoadBalancingPolicy);
        // An affinity cookie would name the destination of the client's first room and carry it into every other room.
        Assert.False(cluster.SessionAffinity!.Enabled);
        var settings = ConsistentHashSettings.Read(cluster, out _, out _);
        Assert.NotNull(settings);
        Assert.Equal(hashKey.ToLowerInvariant(), settings.Key.ToString().ToLowerInvariant());
        // Off unless asked for: a bound moves a room's new members away from it (HAProxy's hash-balance-factor is off by default too).
        Assert.Equal(factor is null ? 0 : double.Parse(factor, System.Globalization.CultureInfo.InvariantCulture), settings.BalanceFactor);

        var withoutAffinity = await ConfigureAsync(policy, metadata, new SessionAffinityConfig { Enabled = false });
        Assert.False(withoutAffinity.SessionAffinity!.Enabled);
    }

    [Fact]
    public async Task Affinity_on_a_hash_cluster_is_refused_and_other_clusters_keep_it_by_default()
    {
        var error = await Assert.ThrowsAsync<GatewayConfigurationException>(() => ConfigureAsync(
            "ConsistentHash", new() { ["HashKey"] = "route:room" }, new SessionAffinityConfig { Enabled = true }));
        Assert.Equal("ReverseProxy:Clusters:rooms:SessionAffinity:Enabled", error.Key);
        Assert.Contains("must be off with LoadBalancingPolicy 'ConsistentHash'", error.Problem);

        Assert.True((await ConfigureAsync(null, null)).SessionAffinity!.Enabled);
        Assert.True((await ConfigureAsync("RoundRobin", new() { ["Other"] = "x" })).SessionAffinity!.Enabled);
    }

    [Fact]
    public async Task At_startup_a_bad_hash_key_exits_2_with_one_line_naming_the_file_and_key()
    {
        var config = new JsonObject
        {
            ["Gateway"] = new JsonObject
            {
                ["Listeners"] = new JsonObject { ["ws"] = new JsonObject { ["Address"] = "127.0.0.1", ["Port"] = 0 } },
                ["Admin"] = new JsonObject { ["Enabled"] = false },
            },
            ["ReverseProxy"] = new JsonObject
            {
                ["Routes"] = new JsonObject { ["rooms"] = new JsonObject { ["ClusterId"] = "chat", ["Match"] = new JsonObject { ["Path"] = "/chat/{room}" } } },
                ["Clusters"] = new JsonObject
                {
                    ["chat"] = new JsonObject
                    {
                        ["LoadBalancingPolicy"] = "ConsistentHash",
                        ["Metadata"] = new JsonObject { ["HashKey"] = "room" },
                        ["Destinations"] = new JsonObject { ["one"] = new JsonObject { ["Address"] = "http://127.0.0.1:5999/" } },
                    },
                },
            },
        };
        var path = Path.Combine(_directory, "bad-hash-key.json");
        await File.WriteAllTextAsync(path, config.ToJsonString());

        var (exitCode, _, stderr) = await GatewayProcess.RunAsync(TimeSpan.FromSeconds(30), "--config", path);

        Assert.Equal(2, exitCode);
        var line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal($"gateway: error: {path}: ReverseProxy:Clusters:chat:Metadata:HashKey: 'room' is not SOURCE:NAME, where SOURCE is route, query, header or cookie (e.g. 'route:room', 'header:X-Room')", line);
    }
}
