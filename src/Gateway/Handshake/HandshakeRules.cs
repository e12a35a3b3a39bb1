using Gateway.Policies;
using Yarp.ReverseProxy.Model;

namespace Gateway.Handshake;

/// <summary>One policy's handshake and limit rules, compiled once from its options.</summary>
internal sealed class HandshakeRules : IDisposable
{
    public HandshakeRules(WebSocketPolicy policy)
    {
        Policy = policy;
        var handshake = policy.Options.Handshake;
        AllowPlainHttp = handshake.AllowPlainHttp;
        AllowMissingOrigin = handshake.AllowMissingOrigin;
        Origins = OriginAllowList.Create(handshake.AllowedOrigins);
        Subprotocols = new SubprotocolFilter(handshake.Subprotocols, handshake.RequireSubprotocol);
        Limits = new ConnectionLimits(policy.Options.Limits);
    }

    public WebSocketPolicy Policy { get; }

    public bool AllowPlainHttp { get; }

    public bool AllowMissingOrigin { get; }

    public OriginAllowList Origins { get; }

    public SubprotocolFilter Subprotocols { get; }

    public ConnectionLimits Limits { get; }

    public void Dispose() => Limits.Dispose();
}

/// <summary>
/// The compiled rules of every policy. Policies are read at startup (the <c>Gateway</c> section does not reload), so
/// rate and connection counts live as long as the process; routes may reload and still find their policy here.
/// </summary>
public sealed class HandshakePolicies : IDisposable
{
    private readonly WebSocketPolicies _policies;
    private readonly Dictionary<WebSocketPolicy, HandshakeRules> _rules = new(ReferenceEqualityComparer.Instance);

    public HandshakePolicies(WebSocketPolicies policies)
    {
        _policies = policies;
        foreach (var policy in policies.All)
        {
            _rules[policy] = new HandshakeRules(policy);
        }
    }

    internal HandshakeRules For(RouteModel route) => _rules[_policies.ForRoute(route)];

    public void Dispose()
    {
        foreach (var rules in _rules.Values)
        {
            rules.Dispose();
        }
    }
}
