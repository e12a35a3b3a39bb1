using System.Net;
using Gateway.Configuration;
using Gateway.LoadBalancing;
using Gateway.Policies;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Forwarder;

namespace Gateway.Proxy;

/// <summary>
/// Runs on every load and reload of YARP's routes and clusters (YARP's own extension point), so the same rules
/// hold at startup and on reload: fills in the gateway's defaults for long-lived WebSocket connections and
/// refuses what YARP would accept but then fail on at request time.
/// </summary>
internal sealed class ProxyConfigDefaults : IProxyConfigFilter
{
    private readonly WebSocketPolicies _policies;
    private readonly ILogger _logger;

    public ProxyConfigDefaults(WebSocketPolicies policies, ILogger<ProxyConfigDefaults>? logger = null)
    {
        _policies = policies;
        _logger = logger ?? (ILogger)Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
    }

    /// <summary>The gateway's LeastRequests counts open WebSocket tunnels for their whole life, and plain requests in flight: least connections.</summary>
    public const string DefaultLoadBalancingPolicy = "LeastRequests";
    public const string DefaultAffinityKeyName = "gateway-affinity";

    public ValueTask<ClusterConfig> ConfigureClusterAsync(ClusterConfig cluster, CancellationToken cancel)
    {
        var key = $"ReverseProxy:Clusters:{cluster.ClusterId}";

        if (cluster.Destinations is null || cluster.Destinations.Count == 0)
        {
            throw new GatewayConfigurationException($"{key}:Destinations", "a cluster needs at least one destination");
        }
        foreach (var (id, destination) in cluster.Destinations)
        {
            if (!Uri.TryCreate(destination.Address, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            {
                throw new GatewayConfigurationException($"{key}:Destinations:{id}:Address",
                    $"'{destination.Address}' is not an absolute http:// or https:// URL");
            }
        }

        if (ConsistentHashSettings.Validate(cluster, key) is { BalanceFactor: > 0 } hashSettings)
        {
            LoadBalancing.Log.BoundOn(_logger, cluster.ClusterId, hashSettings.BalanceFactor);
        }

        var affinity = cluster.SessionAffinity;

        // Sticky by default: a chat client that reconnects should find its session where it left it. A ConsistentHash
        // cluster is sticky by its key instead, and a cookie would override the key.
        affinity ??= new SessionAffinityConfig();
        affinity = affinity with
        {
            Enabled = affinity.Enabled ?? !ConsistentHashSettings.Uses(cluster),
            Policy = affinity.Policy ?? "Cookie",
            AffinityKeyName = string.IsNullOrEmpty(affinity.AffinityKeyName) ? DefaultAffinityKeyName : affinity.AffinityKeyName,
            Cookie = WithCookieDefaults(affinity.Cookie),
        };

        // HTTP/1.1 to backends unless a cluster says otherwise: YARP would first try WebSockets over HTTP/2
        // (extended CONNECT) with https backends, and many backends refuse it.
        var request = cluster.HttpRequest ?? new ForwarderRequestConfig();
        if (request.Version is null)
        {
            request = request with { Version = HttpVersion.Version11, VersionPolicy = HttpVersionPolicy.RequestVersionOrLower };
        }

        // One period for every reader (the passive policy and the connect retry's mark), written where it can be seen.
        var health = cluster.HealthCheck;
        if (health?.Passive is { Enabled: true, ReactivationPeriod: null } passive)
        {
            health = health with { Passive = passive with { ReactivationPeriod = Health.FailureRatePolicy.DefaultReactivationPeriod } };
        }

        return ValueTask.FromResult(cluster with
        {
            LoadBalancingPolicy = cluster.LoadBalancingPolicy ?? DefaultLoadBalancingPolicy,
            SessionAffinity = affinity,
            HttpRequest = request,
            HealthCheck = health,
        });
    }

    /// <summary>
    /// YARP 2.1 (SessionAffinity/AffinityHelpers.cs) writes the affinity cookie with <c>Secure</c> only when
    /// <c>SecurePolicy</c> is set (unset means never, even over TLS), <c>HttpOnly</c> unless told otherwise, and no
    /// <c>SameSite</c>. The gateway's default: <c>Secure</c> whenever the handshake came over TLS, so a cookie issued
    /// on wss:// is never sent back over plain ws://, and <c>HttpOnly</c>, since no page script needs it. Whatever a
    /// cluster sets itself stays; <c>SameSite</c> stays unset, so pages of other sites that the Origin rules allow
    /// keep their affinity in browsers that still send cookies cross-site.
    /// </summary>
    internal static SessionAffinityCookieConfig WithCookieDefaults(SessionAffinityCookieConfig? cookie)
    {
        cookie ??= new SessionAffinityCookieConfig();
        return cookie with
        {
            SecurePolicy = cookie.SecurePolicy ?? CookieSecurePolicy.SameAsRequest,
            HttpOnly = cookie.HttpOnly ?? true,
        };
    }

    public ValueTask<RouteConfig> ConfigureRouteAsync(RouteConfig route, ClusterConfig? cluster, CancellationToken cancel)
    {
        var key = $"ReverseProxy:Routes:{route.RouteId}";
        if (string.IsNullOrEmpty(route.ClusterId))
        {
            throw new GatewayConfigurationException($"{key}:ClusterId", "is required");
        }
        if (cluster is null)
        {
            // YARP accepts a route to a missing cluster and answers 503 at request time; a typo deserves a clear refusal.
            throw new GatewayConfigurationException($"{key}:ClusterId", $"cluster '{route.ClusterId}' is not defined under ReverseProxy:Clusters (or it failed validation)", consequence: true);
        }
        if (route.Metadata is { } metadata && metadata.TryGetValue(WebSocketPolicies.MetadataKey, out var policy) && !_policies.Contains(policy))
        {
            throw new GatewayConfigurationException($"{key}:Metadata:{WebSocketPolicies.MetadataKey}",
                $"policy '{policy}' is not defined under {GatewayOptions.SectionName}:WebSocketPolicies");
        }
        return ValueTask.FromResult(route);
    }
}
