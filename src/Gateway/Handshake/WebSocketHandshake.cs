using System.Diagnostics;
using Gateway.Listeners;
using Gateway.Policies;
using Microsoft.Extensions.Primitives;

namespace Gateway.Handshake;

/// <summary>
/// A WebSocket handshake the gate let through, as one request feature: what the relay and the backend checks read
/// instead of detecting the handshake again or looking the policy up again. The gate sets it; the backend's answer
/// (<see cref="Accept"/>) completes it.
/// </summary>
internal sealed class WebSocketHandshake
{
    public const string Http11 = "HTTP/1.1";
    public const string Http2 = "HTTP/2";

    internal WebSocketHandshake(string routeId, WebSocketPolicy policy, bool isHttp2, bool isTls)
    {
        RouteId = routeId;
        Policy = policy;
        Protocol = isHttp2 ? Http2 : Http11;
        Scheme = isTls ? "wss" : "ws";
    }

    public string RouteId { get; }

    public WebSocketPolicy Policy { get; }

    /// <summary><c>HTTP/1.1</c> (an upgrade, RFC 6455 §4) or <c>HTTP/2</c> (extended CONNECT, RFC 8441).</summary>
    public string Protocol { get; }

    public bool IsHttp2 => ReferenceEquals(Protocol, Http2);

    /// <summary><c>ws</c> or <c>wss</c>, as the client connected.</summary>
    public string Scheme { get; }

    /// <summary>
    /// The handshake's span while tracing is on (<c>Telemetry/HandshakeTracing.cs</c>), else null; it ends when the client
    /// has its 101, or when the gate is done with a handshake that was not upgraded.
    /// </summary>
    public Activity? Span { get; internal set; }

    /// <summary>
    /// The authenticated user (the token's <c>sub</c> claim) when the policy's identity is on and a valid token came with
    /// the handshake; null otherwise. What per-user connection limits and rate limits (<c>RateLimits:PerUser</c>) count
    /// against; without it they do not apply.
    /// </summary>
    public string? UserId { get; internal set; }

    /// <summary>
    /// When the tunnel must close because its token expired (the token's <c>exp</c> plus the policy's clock skew), when
    /// the policy's <c>Identity:OnExpiry</c> is <c>Close</c>; null: never.
    /// </summary>
    public DateTimeOffset? TokenClosesAt { get; internal set; }

    /// <summary>The subprotocol the backend agreed to (RFC 6455 §4.2.2), once it answered; null for none.</summary>
    public string? Subprotocol { get; private set; }

    /// <summary>The extensions the backend agreed to (RFC 6455 §9.1), once it answered.</summary>
    public StringValues Extensions { get; private set; }

    /// <summary>
    /// The RSV bits (as a mask of the first header byte) the client may set: only those an agreed extension defines
    /// (RFC 6455 §5.2), that is RSV1 with permessage-deflate (RFC 7692 §6).
    /// </summary>
    public byte ClientReservedBits { get; private set; }

    /// <summary>Records the backend's 101 (or HTTP/2 200): the subprotocol and extensions now in force.</summary>
    internal void Accept(string? subprotocol, StringValues extensions)
    {
        Subprotocol = subprotocol;
        Extensions = extensions;
        ClientReservedBits = WebSocketExtensions.AllowedReservedBits(extensions);
    }

    // ---- What the gate holds for the tunnel's whole life ----

    private ConnectionLimits.Permit _permit;
    private System.Threading.RateLimiting.RateLimitLease? _userPermit;
    private FileDescriptorLimit? _descriptors;
    private UpgradedConnectionLimit? _upgraded;
    private int _holders = 1;

    /// <summary>The gate's permits, given back by <see cref="Release"/> once the request and the tunnel are both over.</summary>
    internal void Hold(ConnectionLimits.Permit permit, FileDescriptorLimit descriptors, UpgradedConnectionLimit? upgraded,
        System.Threading.RateLimiting.RateLimitLease? userPermit = null)
    {
        _userPermit = userPermit;
        _permit = permit;
        _descriptors = descriptors;
        _upgraded = upgraded;
    }

    /// <summary>
    /// The tunnel goes on after its request has ended (the lean HTTP/1.1 path ends it at the 101): the permits stay taken
    /// until the tunnel's own <see cref="Release"/> too.
    /// </summary>
    internal void OutliveRequest() => Interlocked.Increment(ref _holders);

    /// <summary>One holder (the gate's request, or a tunnel that outlived it) is done; the last gives the permits back.</summary>
    internal void Release()
    {
        if (Interlocked.Decrement(ref _holders) != 0)
        {
            return;
        }
        _upgraded?.Exit();
        _descriptors?.Exit();
        _permit.Dispose();
        _userPermit?.Dispose();
    }
}
