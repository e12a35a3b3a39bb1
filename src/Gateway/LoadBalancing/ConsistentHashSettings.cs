using System.Globalization;
using Gateway.Configuration;
using Yarp.ReverseProxy.Configuration;

namespace Gateway.LoadBalancing;

/// <summary>
/// A <c>ConsistentHash</c> cluster's metadata: <c>HashKey</c> (where a request's key comes from) and
/// <c>HashBalanceFactor</c> (the load bound). Checked when the configuration loads, so a mistake is refused with its
/// key at startup and on reload, and read again by the policy only when the cluster's configuration changes.
/// </summary>
public sealed class ConsistentHashSettings
{
    public const string PolicyName = "ConsistentHash";
    public const string HashKeyMetadata = "HashKey";
    public const string BalanceFactorMetadata = "HashBalanceFactor";

    /// <summary>HAProxy's usual choice; Mirrokni et al. (2016) show keys move little under bounds of this order.</summary>
    public const double DefaultBalanceFactor = 1.25;

    private ConsistentHashSettings(HashKey key, double balanceFactor)
    {
        Key = key;
        BalanceFactor = balanceFactor;
    }

    public HashKey Key { get; }

    /// <summary>No destination takes a new request while it has ⌈factor × mean⌉ or more; 0: no bound.</summary>
    public double BalanceFactor { get; }

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
        fault = string.Empty;
        return new ConsistentHashSettings(key, factor);
    }

    /// <summary>Throws the one error that names the key, for <c>ProxyConfigDefaults</c> (startup and every reload).</summary>
    public static void Validate(ClusterConfig cluster, string clusterKey)
    {
        if (!Uses(cluster))
        {
            foreach (var name in (ReadOnlySpan<string>)[HashKeyMetadata, BalanceFactorMetadata])
            {
                if (cluster.Metadata?.ContainsKey(name) == true)
                {
                    throw new GatewayConfigurationException($"{clusterKey}:Metadata:{name}",
                        $"applies only with LoadBalancingPolicy '{PolicyName}' (this cluster's is '{cluster.LoadBalancingPolicy ?? "LeastRequests"}')");
                }
            }
            return;
        }

        if (Read(cluster, out var faultKey, out var fault) is null)
        {
            throw new GatewayConfigurationException($"{clusterKey}:Metadata:{faultKey}", fault);
        }
        if (cluster.SessionAffinity?.Enabled == true)
        {
            // The affinity cookie would name the destination of the client's first room and send every later room there.
            throw new GatewayConfigurationException($"{clusterKey}:SessionAffinity:Enabled",
                $"must be off with LoadBalancingPolicy '{PolicyName}': the affinity cookie would override the hash (the hash is sticky by itself)");
        }
    }
}
