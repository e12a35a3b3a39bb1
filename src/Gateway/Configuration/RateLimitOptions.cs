namespace Gateway.Configuration;

/// <summary>
/// <c>Gateway:WebSocketPolicies:NAME:RateLimits</c>: token buckets on the data messages a tunnel relays (RFC 6455 §5.6;
/// control frames are never counted). Each scope has a bucket for messages and one for payload bytes; a scope or a
/// bucket left out (or with <c>PerSecond</c> 0) does not limit. What happens at the limit is <see cref="Action"/>.
/// </summary>
internal sealed class RateLimitOptions
{
    /// <summary>Client to backend, per tunnel.</summary>
    public RateLimitScopeOptions PerConnection { get; set; } = new();

    /// <summary>Client to backend, shared by all tunnels of one client (an IPv4 address or an IPv6 network of
    /// <c>Limits:IPv6PrefixLength</c>) under this policy.</summary>
    public RateLimitScopeOptions PerClient { get; set; } = new();

    /// <summary>Client to backend, shared by all tunnels of one authenticated user under this policy; tunnels whose
    /// user is not known (no identity configured, or an anonymous handshake) are not limited by it.</summary>
    public RateLimitScopeOptions PerUser { get; set; } = new();

    /// <summary>Client to backend, shared by all tunnels of one route.</summary>
    public RateLimitScopeOptions PerRoute { get; set; } = new();

    /// <summary>Backend to client, per tunnel.</summary>
    public RateLimitScopeOptions BackendPerConnection { get; set; } = new();

    /// <summary>What happens to a message over a limit.</summary>
    public RateLimitAction Action { get; set; } = RateLimitAction.Close;
}

/// <summary>One scope's buckets.</summary>
internal sealed class RateLimitScopeOptions
{
    /// <summary>Data messages (a fragmented message counts once, at its first frame).</summary>
    public RateOptions Messages { get; set; } = new();

    /// <summary>Payload bytes of data frames.</summary>
    public RateOptions Bytes { get; set; } = new();
}

/// <summary>A token bucket: refilled at <see cref="PerSecond"/>, holding at most <see cref="Burst"/>.</summary>
internal sealed class RateOptions
{
    /// <summary>The sustained rate; 0 means no limit.</summary>
    public double PerSecond { get; set; }

    /// <summary>How much may go at once after a quiet spell; 0 means the same as <see cref="PerSecond"/> (at least 1).</summary>
    public double Burst { get; set; }
}

internal enum RateLimitAction
{
    /// <summary>Close the tunnel: the client gets 1008 (policy violation, RFC 6455 §7.4.1), the backend 1001.</summary>
    Close,

    /// <summary>Stop reading from the sender until its bucket has refilled: backpressure through TCP.</summary>
    Hold,

    /// <summary>Do not forward the message (all its fragments), and count it.</summary>
    Drop,
}
