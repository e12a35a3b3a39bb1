using System.Security.Cryptography;
using Gateway.Policies;
using Yarp.ReverseProxy.Configuration;

namespace Gateway.Warmup;

/// <summary>
/// The warm-up's own YARP route and cluster. They live in a configuration provider of their own (YARP merges
/// providers; this one is YARP's in-memory provider) only while the warm-up runs, under names and a path that carry
/// a random token: no client can guess them, and no operator's route can collide with them.
/// </summary>
internal sealed class WarmupRoute
{
    /// <summary>Marks the warm-up provider's revisions, so reload reporting can tell them from the file's.</summary>
    public const string RevisionPrefix = "gateway-warmup:";

    public WarmupRoute()
    {
        Token = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));
        RouteId = $"gateway-warmup-{Token}";
        Path = $"/.gateway-warmup/{Token}";
    }

    /// <summary>Part of every name the warm-up gives YARP.</summary>
    public string Token { get; }

    public string RouteId { get; }

    public string ClusterId => RouteId;

    public string Path { get; }

    /// <summary>Registered with YARP next to the configuration file's provider; empty except during the warm-up.</summary>
    public InMemoryConfigProvider Provider { get; } = new([], [], RevisionPrefix + "off");

    public void Open(Uri backend) => Provider.Update([Route()], [Cluster(backend)], RevisionPrefix + "on");

    public void Close() => Provider.Update([], [], RevisionPrefix + "off");

    public static bool IsWarmupRevision(IProxyConfig config) =>
        config.RevisionId?.StartsWith(RevisionPrefix, StringComparison.Ordinal) == true;

    private RouteConfig Route() => new()
    {
        RouteId = RouteId,
        ClusterId = ClusterId,
        Match = new RouteMatch { Path = Path },
        // The handshakes come from loopback without an Origin: whatever the file's default policy demands.
        Metadata = new Dictionary<string, string> { [WebSocketPolicies.MetadataKey] = WebSocketPolicies.BuiltInName },
    };

    /// <summary>The cluster as an operator's would be: the gateway's defaults (affinity, HTTP/1.1 upgrades) fill the rest.</summary>
    private ClusterConfig Cluster(Uri backend) => new()
    {
        ClusterId = ClusterId,
        Destinations = new Dictionary<string, DestinationConfig>
        {
            [RouteId] = new DestinationConfig { Address = backend.ToString() },
        },
    };
}
