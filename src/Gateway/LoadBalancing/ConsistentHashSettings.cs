using System.Globalization;
using Gateway.Configuration;
using Yarp.ReverseProxy.Configuration;

namespace Gateway.LoadBalancing;

/// <summary>
/// A <c>ConsistentHash</c> cluster's metadata: <c>HashKey</c> (where a request's key comes from),
/// <c>HashBalanceFactor</c> (the load bound, off by default) and <c>HashSeed</c> (a secret mixed into the key's hash). Checked when the configuration loads, so a mistake is refused with its
/// key at startup and on reload, and read again by the policy only when the cluster's configuration changes.
/// </summary>
internal sealed class ConsistentHashSettings
{
    public const string PolicyName = "ConsistentHash";
    public const string HashKeyMetadata = "HashKey";
    public const string BalanceFactorMetadata = "HashBalanceFactor";
    public const string SeedMetadata = "HashSeed";

    /// <summary>
    /// Off, as HAProxy's <c>hash-balance-factor</c> is by default: a bound moves a key off its destination, and where
    /// rooms live in each backend's memory a moved member no longer sees the room (each replica judges the bound by its
    /// own counts, so replicas can disagree about a room however sticky each one is).
    /// </summary>
    public const double DefaultBalanceFactor = 0;

    /// <summary>Shorter secrets could be guessed by trying them against observed placements.</summary>
    public const int MinimumSeedLength = 16;

    private ConsistentHashSettings(HashKey key, double balanceFactor, string? seed)
    {
        Key = key;
        BalanceFactor = balanceFactor;
        HasSeed = !string.IsNullOrEmpty(seed);
        Start = StableHash.Seeded(seed);
    }

    public HashKey Key { get; }

    /// <summary>No destination takes a new key while it has ⌈factor × mean⌉ or more; 0: no bound.</summary>
    public double BalanceFactor { get; }

    public bool HasSeed { get; }

    /// <summary>The hash's state after the seed: each request's key is hashed on from here.</summary>
    internal StableHash Start { get; }

    /// <summary>YARP looks policies up by name case-insensitively.</summary>
    public static bool Uses(ClusterConfig cluster) =>
        string.Equals(cluster.LoadBalancingPolicy, PolicyName, StringComparison.OrdinalIgnoreCase);

    /// <summary>The settings, or null with the metadata key at fault and why.</summary>
    public static ConsistentHashSettings? Read(ClusterConfig cluster, out string faultKey, out string fault)
    {
        var metadata = cluster.Metadata;
        faultKey = HashKeyMetadata;
        if (metadata is null || !metadata.TryGetValue(HashKeyMetadata, out var keyText) || string.IsNullOrWhiteSpace(keyText))
        {
            fault = $"is required with LoadBalancingPolicy '{PolicyName}': where a request's key comes from, e.g. 'route:room', 'query:room', 'header:X-Room' or 'cookie:room'";
            return null;
        }
        if (!HashKey.TryParse(keyText, out var key, out fault))
        {
            return null;
        }

        var factor = DefaultBalanceFactor;
        if (metadata.TryGetValue(BalanceFactorMetadata, out var factorText))
        {
            faultKey = BalanceFactorMetadata;
            if (!double.TryParse(factorText, NumberStyles.Float, CultureInfo.InvariantCulture, out factor)
                || !double.IsFinite(factor) || (factor != 0 && factor < 1))
            {
                // Below 1 some request would find every destination over the bound.
                fault = $"'{factorText}' is not a number of at least 1 (or 0 for no bound)";
                return null;
            }
        }
        string? seed = null;
        if (metadata.TryGetValue(SeedMetadata, out var seedText))
        {
            faultKey = SeedMetadata;
            if (seedText is null || seedText.Length < MinimumSeedLength || string.IsNullOrWhiteSpace(seedText))
            {
                fault = $"must be a secret of at least {MinimumSeedLength} characters (the same on every replica), e.g. from 'openssl rand -base64 24'";
                return null;
            }
            seed = seedText;
        }
        fault = string.Empty;
        return new ConsistentHashSettings(key, factor, seed);
    }

    /// <summary>
    /// Throws the one error that names the key, for <c>ProxyConfigDefaults</c> (startup and every reload); the
    /// settings of a <c>ConsistentHash</c> cluster, null for any other.
    /// </summary>
    public static ConsistentHashSettings? Validate(ClusterConfig cluster, string clusterKey)
    {
        if (!Uses(cluster))
        {
            foreach (var name in (ReadOnlySpan<string>)[HashKeyMetadata, BalanceFactorMetadata, SeedMetadata])
            {
                if (cluster.Metadata?.ContainsKey(name) == true)
                {
                    throw new GatewayConfigurationException($"{clusterKey}:Metadata:{name}",
                        $"applies only with LoadBalancingPolicy '{PolicyName}' (this cluster's is '{cluster.LoadBalancingPolicy ?? "LeastRequests"}')");
                }
            }
            return null;
        }

        if (Read(cluster, out var faultKey, out var fault) is not { } settings)
        {
            throw new GatewayConfigurationException($"{clusterKey}:Metadata:{faultKey}", fault);
        }
        if (cluster.SessionAffinity?.Enabled == true)
        {
            // The affinity cookie would name the destination of the client's first room and send every later room there.
            throw new GatewayConfigurationException($"{clusterKey}:SessionAffinity:Enabled",
                $"must be off with LoadBalancingPolicy '{PolicyName}': the affinity cookie would override the hash (the hash is sticky by itself)");
        }
        return settings;
    }
}
