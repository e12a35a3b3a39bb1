namespace Gateway.Policies;

/// <summary>
/// A named WebSocket policy (<c>Gateway:WebSocketPolicies:NAME</c>). Routes name one in their metadata
/// (<c>"Metadata": { "WebSocketPolicy": "chat" }</c>), the way YARP routes name an authorization policy;
/// routes that name none use the policy called <c>default</c>, or the built-in defaults when there is none.
/// </summary>
public sealed class WebSocketPolicyOptions
{
    /// <summary>What a handshake must satisfy before any backend is contacted.</summary>
    public HandshakeOptions Handshake { get; set; } = new();

    /// <summary>Connection and handshake-rate limits.</summary>
    public ConnectionLimitOptions Limits { get; set; } = new();

    /// <summary>Pings into idle tunnels and reaping of peers that stop answering.</summary>
    public KeepAliveOptions KeepAlive { get; set; } = new();

    /// <summary>Frame and message rules enforced at the edge.</summary>
    public FrameRuleOptions Frames { get; set; } = new();
}

public sealed class HandshakeOptions
{
}

public sealed class ConnectionLimitOptions
{
}

public sealed class KeepAliveOptions
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

public sealed class FrameRuleOptions
{
    /// <summary>Largest message (all frames of it) a client may send; 0 means no limit. Over it: close 1009.</summary>
    public long MaxMessageBytes { get; set; }

    /// <summary>Largest single frame a client may send; 0 means no limit. Over it: close 1009.</summary>
    public long MaxFrameBytes { get; set; }
}
