namespace Gateway.Configuration;

/// <summary>
/// A named WebSocket policy (<c>Gateway:WebSocketPolicies:NAME</c>). Routes name one in their metadata
/// (<c>"Metadata": { "WebSocketPolicy": "chat" }</c>), the way YARP routes name an authorization policy;
/// routes that name none use the policy called <c>default</c>, or the built-in defaults when there is none.
/// </summary>
internal sealed class WebSocketPolicyOptions
{
    /// <summary>What a handshake must satisfy before any backend is contacted.</summary>
    public HandshakeOptions Handshake { get; set; } = new();

    /// <summary>Connection and handshake-rate limits.</summary>
    public ConnectionLimitOptions Limits { get; set; } = new();

    /// <summary>Pings into idle tunnels and reaping of peers that stop answering.</summary>
    public KeepAliveOptions KeepAlive { get; set; } = new();

    /// <summary>Frame and message rules enforced at the edge.</summary>
    public FrameRuleOptions Frames { get; set; } = new();

    /// <summary>Who the client is: a JWT checked at the handshake, its claims passed on as headers (off unless keys are set).</summary>
    public IdentityOptions Identity { get; set; } = new();

    /// <summary>Message and byte rate limits on data messages, per connection, client, user and route.</summary>
    public RateLimitOptions RateLimits { get; set; } = new();
}

internal sealed class HandshakeOptions
{
    /// <summary>
    /// Browser origins that may open WebSockets (RFC 6455 section 10.2): exact origins (<c>https://chat.example.com</c>,
    /// <c>http://localhost:8080</c>), subdomain wildcards (<c>https://*.example.com</c>), <c>null</c> (the opaque
    /// origin of sandboxed frames and files) or <c>*</c> (any origin but <c>null</c>). Empty: same origin only, that is
    /// the page must come from the host and port the client addressed (its <c>Host</c> header).
    /// </summary>
    public List<string> AllowedOrigins { get; set; } = new();

    /// <summary>
    /// Whether a handshake without <c>Origin</c> passes. Browsers always send one, so a missing Origin is a
    /// non-browser client (a native app, a server) that no foreign page can impersonate.
    /// </summary>
    public bool AllowMissingOrigin { get; set; } = true;

    /// <summary>
    /// Whether the route also serves ordinary HTTP (a chat page, a negotiate endpoint). When false, a request
    /// that is not a WebSocket handshake gets 426 (GET) or 405 (any other method).
    /// </summary>
    public bool AllowPlainHttp { get; set; } = true;

    /// <summary>Subprotocols clients may offer; others are removed before forwarding. Empty: no filtering.</summary>
    public List<string> Subprotocols { get; set; } = new();

    /// <summary>Refuse (400) a handshake that offers no subprotocol, or none that <see cref="Subprotocols"/> accepts.</summary>
    public bool RequireSubprotocol { get; set; }
}

internal sealed class ConnectionLimitOptions
{
    /// <summary>Open WebSocket connections over all routes of this policy; 0 means no limit. Over it: 503.</summary>
    public int MaxConnections { get; set; }

    /// <summary>Open WebSocket connections per client (see <see cref="IPv6PrefixLength"/>); 0 means no limit. Over it: 503.</summary>
    public int MaxConnectionsPerClient { get; set; }

    /// <summary>
    /// WebSocket handshakes a client may make per minute (a token bucket: bursts up to this many, then
    /// refilled evenly); 0 means no limit. Over it: 429 with Retry-After.
    /// </summary>
    public int HandshakesPerMinutePerClient { get; set; }

    /// <summary>
    /// The longest a tunnel may stay open; 0 means no limit. Older tunnels get a Close 1001 on both sides, each up to
    /// a tenth earlier at its own offset, so that after a scale-up clients reconnect and spread over the new backends
    /// without all leaving at once.
    /// </summary>
    public TimeSpan MaxLifetime { get; set; }

    /// <summary>
    /// Open WebSocket connections per authenticated user (the token's <c>sub</c>, see <see cref="IdentityOptions"/>),
    /// from any address; 0 means no limit. Over it: 503. Handshakes without a token (Identity:Required false) do not count.
    /// </summary>
    public int MaxConnectionsPerUser { get; set; }

    /// <summary>
    /// The per-client limits count an IPv6 client by the network of this prefix length (1-128): a subscriber is
    /// usually given a /64 and can use any address in it. IPv4 clients (also IPv4-mapped, and the well-known
    /// NAT64 prefix 64:ff9b::/96) always count per address.
    /// </summary>
    public int IPv6PrefixLength { get; set; } = DefaultIPv6PrefixLength;

    /// <summary>A /64 is what one subscriber usually gets (RFC 6177): its addresses are one client.</summary>
    public const int DefaultIPv6PrefixLength = 64;
}

internal sealed class KeepAliveOptions
{
    /// <summary>
    /// Ping the client when nothing has been sent to it for this long. Below the idle cut of common
    /// intermediaries (AWS ALB 60 s, Cloudflare 100 s, YARP's own ActivityTimeout 100 s). Zero turns keepalive off.
    /// </summary>
    public TimeSpan Interval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>A peer that sends nothing at all for this long after a ping is given up on.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>Ping the backend leg too (on by default when keepalive is on): detects backends that died silently.</summary>
    public bool Backend { get; set; } = true;
}

internal sealed class FrameRuleOptions
{
    /// <summary>Largest message (all frames of it) a client may send; 0 means no limit. Over it: close 1009.</summary>
    public long MaxMessageBytes { get; set; }

    /// <summary>Largest single frame a client may send; 0 means no limit. Over it: close 1009.</summary>
    public long MaxFrameBytes { get; set; }
}

/// <summary>
/// Identity at the edge: a JWT taken from the handshake (browsers cannot set <c>Authorization</c> on a WebSocket, so also
/// a query parameter, a cookie or a bearer subprotocol), checked (signature, issuer, audience, lifetime), and chosen
/// claims passed to the backend as headers. On when <see cref="SigningKeys"/> or <see cref="JwksUrl"/> is set.
/// </summary>
internal sealed class IdentityOptions
{
    /// <summary>Refuse (401) a handshake without a token. False: such a handshake passes without claim headers; a bad token is still refused.</summary>
    public bool Required { get; set; } = true;

    /// <summary>
    /// Where the token may be, tried in order: <c>Header</c> (<c>Authorization: Bearer</c>, RFC 6750 §2.1),
    /// <c>Query:NAME</c>, <c>Cookie:NAME</c>, <c>Subprotocol</c> (<c>base64url.bearer.authorization.k8s.io.TOKEN</c>).
    /// Empty: <c>Header</c> only.
    /// </summary>
    public List<string> TokenSources { get; set; } = new();

    /// <summary>Key files (relative to the configuration file): a PEM RSA or EC public key, or any other file a base64 symmetric key (HS256).</summary>
    public List<string> SigningKeys { get; set; } = new();

    /// <summary>A JSON Web Key Set (RFC 7517 §5) fetched at the first handshake that needs it, every <see cref="JwksRefreshInterval"/> and when a token names an unknown key.</summary>
    public string? JwksUrl { get; set; }

    /// <summary>How often the key set is fetched again.</summary>
    public TimeSpan JwksRefreshInterval { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>The <c>iss</c> every token must carry (RFC 7519 §4.1.1). Required when identity is on.</summary>
    public string? Issuer { get; set; }

    /// <summary>The <c>aud</c> every token must carry (RFC 7519 §4.1.3). Required when identity is on.</summary>
    public string? Audience { get; set; }

    /// <summary>Allowed clock difference with the token's issuer for <c>exp</c> and <c>nbf</c>.</summary>
    public TimeSpan ClockSkew { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Claims to pass to the backend, claim name to header name (<c>"sub": "X-User-Id"</c>). These headers are always
    /// removed from what the client sent, so a client cannot forge them.
    /// </summary>
    public Dictionary<string, string> ClaimHeaders { get; set; } = new(StringComparer.Ordinal);

    /// <summary>Claims a token must carry with these values (an array claim must contain it); otherwise 403.</summary>
    public Dictionary<string, string> RequiredClaims { get; set; } = new(StringComparer.Ordinal);

    /// <summary>What happens to a tunnel when its token expires.</summary>
    public TokenExpiryAction OnExpiry { get; set; } = TokenExpiryAction.Close;

    /// <summary>What the backend's request line gets of a <c>Query:NAME</c> token: nothing, or the parameter with its value redacted.</summary>
    public QueryTokenHandling QueryToken { get; set; } = QueryTokenHandling.Remove;

    /// <summary>Whether the policy checks identity at all: only when it has somewhere to get keys from.</summary>
    public bool Enabled => SigningKeys.Count > 0 || !string.IsNullOrWhiteSpace(JwksUrl);
}

internal enum TokenExpiryAction
{
    /// <summary>Close 1008 "token expired" on both sides (RFC 6455 §7.4.1: policy violation).</summary>
    Close,

    /// <summary>The token is checked at the handshake only; the tunnel lives on.</summary>
    KeepOpen,
}

internal enum QueryTokenHandling
{
    Remove,
    Redact,
}
