using Gateway.Identity;
using Gateway.Policies;
using Yarp.ReverseProxy.Model;

namespace Gateway.Handshake;

/// <summary>One policy's handshake and limit rules, compiled once from its options.</summary>
internal sealed class HandshakeRules : IDisposable
{
    public HandshakeRules(WebSocketPolicy policy, ConnectionLimits? limits = null, TokenAuthenticator? identity = null)
    {
        Identity = identity;
        Policy = policy;
        var handshake = policy.Options.Handshake;
        AllowPlainHttp = handshake.AllowPlainHttp;
        AllowMissingOrigin = handshake.AllowMissingOrigin;
        Origins = OriginAllowList.Create(handshake.AllowedOrigins);
        Subprotocols = new SubprotocolFilter(handshake.Subprotocols, handshake.RequireSubprotocol);
        Limits = limits ?? new ConnectionLimits(policy.Options.Limits);
    }

    public WebSocketPolicy Policy { get; }

    public bool AllowPlainHttp { get; }

    public bool AllowMissingOrigin { get; }

    public OriginAllowList Origins { get; }

    public SubprotocolFilter Subprotocols { get; }

    public ConnectionLimits Limits { get; }

    /// <summary>The policy's token checks, or null when its identity is off.</summary>
    public TokenAuthenticator? Identity { get; }

    public void Dispose() => Limits.Dispose();
}

/// <summary>
/// The compiled rules of every policy, compiled when a handshake first needs them. When the policies reload, a policy
/// whose limits did not change keeps its <see cref="ConnectionLimits"/> (and so its counts of open tunnels and recent
/// handshakes); one whose limits changed starts new counts, and its open tunnels count against the old ones until they
/// close.
/// </summary>
internal sealed class HandshakePolicies : IDisposable
{
    private readonly WebSocketPolicies _policies;
    private readonly TokenAuthenticators _authenticators;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<WebSocketPolicy, HandshakeRules> _rules = new(ReferenceEqualityComparer.Instance);
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, HandshakeRules> _latest = new(StringComparer.OrdinalIgnoreCase);

    public HandshakePolicies(WebSocketPolicies policies, TokenAuthenticators authenticators)
    {
        _policies = policies;
        _authenticators = authenticators;
        foreach (var policy in policies.All)
        {
            Compile(policy);
        }
        policies.Changed += OnPoliciesChanged;
    }

    internal HandshakeRules For(RouteModel route)
    {
        var policy = _policies.ForRoute(route);
        return _rules.TryGetValue(policy, out var rules) ? rules : Compile(policy);
    }

    private HandshakeRules Compile(WebSocketPolicy policy) => _rules.GetOrAdd(policy, static (policy, self) =>
    {
        var kept = self._latest.TryGetValue(policy.Name, out var previous) && SameLimits(previous.Policy.Options.Limits, policy.Options.Limits)
            ? previous.Limits
            : null;
        var rules = new HandshakeRules(policy, kept, self._authenticators.Create(policy.Name, policy.Options.Identity));
        self._latest[policy.Name] = rules;
        return rules;
    }, this);

    private void OnPoliciesChanged()
    {
        foreach (var policy in _policies.All)
        {
            Compile(policy);
        }
        // Rules of policies no longer current are looked up no more (tunnels hold their permits, not the rules).
        foreach (var stale in _rules.Keys.Where(p => !ReferenceEquals(_policies.ByName(p.Name), p)).ToList())
        {
            _rules.TryRemove(stale, out _);
        }
    }

    private static bool SameLimits(Configuration.ConnectionLimitOptions a, Configuration.ConnectionLimitOptions b) =>
        a.MaxConnections == b.MaxConnections && a.MaxConnectionsPerClient == b.MaxConnectionsPerClient
        && a.HandshakesPerMinutePerClient == b.HandshakesPerMinutePerClient && a.IPv6PrefixLength == b.IPv6PrefixLength
        && a.MaxConnectionsPerUser == b.MaxConnectionsPerUser;

    public void Dispose()
    {
        _policies.Changed -= OnPoliciesChanged;
        foreach (var rules in _latest.Values)
        {
            rules.Dispose();
        }
    }
}
