using Gateway.AccessLogging;
using System.Diagnostics;
using Gateway.Handshake;
using Microsoft.AspNetCore.Connections.Features;

namespace Gateway.Relay;

/// <summary>
/// One proxied WebSocket as the gateway sees it, from the client's 101 (or HTTP/2 200) on: the
/// <see cref="TunnelForwarder"/> hands it the backend's connection and the client's upgraded one, and it relays them
/// itself (<c>.Pumps.cs</c>), one loop per direction, until both have ended. Both directions are followed frame by
/// frame on the way in (headers scanned, payloads passed by count); the gateway's own frames go out through one
/// <see cref="FrameGate"/> per peer.
/// </summary>
/// <remarks>
/// The type is split by job, as <c>ManagedWebSocket</c> is: the loops (<c>.Pumps.cs</c>), the client read path
/// (<c>.ClientReads.cs</c>), the backend read path (<c>.BackendReads.cs</c>), the write paths (<c>.Writes.cs</c>),
/// keepalive (<c>.KeepAlive.cs</c>) and closing, where who closed, with which code and what is counted is decided
/// (<c>.Closing.cs</c>).
/// A peer that vanished ends its direction (a read returns 0, a write is dropped) and the tunnel records the outcome
/// itself, so nothing is logged as a proxy error for it and passive health hears only what the relay says was the
/// backend's fault. Nothing of the request is kept: what the access line and the admin API show is copied at the 101,
/// and the client's connection is reached through its request only while the request runs (Kestrel's paths), or
/// through the connection itself once the request has ended at the 101 (the lean HTTP/1.1 path).
/// </remarks>
internal sealed partial class RelayTunnel
{
    private readonly WebSocketHandshake _handshake;
    private readonly KeepAliveSweeper _sweeper;
    private readonly RelayMetrics _metrics;
    private readonly ILogger _logger;
    private readonly AccessLogWriter? _accessLog;

    private Stream? _client;
    private Stream? _backend;
    private int _slot = -1;
    private int _completed;

    // How the client's connection is cut and seen to go: through its running request, or through the connection itself
    // once the request has ended (then _request is null).
    private HttpContext? _request;
    private IConnectionLifetimeFeature? _connection;
    private CancellationToken _clientGone;
    private bool _clientOwnsSocket;

    private FrameScanner _fromClient;
    private FrameScanner _fromBackend;
    private readonly FrameGate _toClient = new();
    private readonly FrameGate _toBackend = new();

    // What the tunnel is, for metrics, fixed when it opens.
    private readonly long _createdTimestamp;
    private long _openedTimestamp;
    private TagList _tags;
    private string _cluster = string.Empty;
    private string _destination = string.Empty;
    private System.Net.IPAddress? _clientAddress; // for the admin API, which must not read a context that may be finished

    // For the access line, taken at the handshake: the line is written when the context may be gone.
    private string? _path;
    private int _clientPort;
    private System.Security.Authentication.SslProtocols _tlsProtocol;
    private System.Net.Security.TlsCipherSuite? _tlsCipher;

    /// <param name="createdTimestamp">When the handshake reached the forwarder (<see cref="TimeProvider.GetTimestamp"/>), for the handshake's duration.</param>
    internal RelayTunnel(WebSocketHandshake handshake, KeepAliveSweeper sweeper, RelayMetrics metrics, ILogger logger, AccessLogWriter? accessLog,
        long createdTimestamp)
    {
        _handshake = handshake;
        _sweeper = sweeper;
        _metrics = metrics;
        _logger = logger;
        _accessLog = accessLog;
        _createdTimestamp = createdTimestamp;
        _policyVersion = sweeper.Policies.Version;
        SetKeepAlive(handshake.Policy);
        // The backend direction is passed as it is (any RSV bit, any opcode): the gateway protects the backend from
        // clients, and what the backend sends is between it and its client.
        _fromBackend.Configure(fromClient: false, maxFrameBytes: 0, maxMessageBytes: 0, allowedReservedBits: WebSocketFrame.ReservedBits);
    }

    /// <summary>The route the tunnel belongs to.</summary>
    public string RouteId => _handshake.RouteId;

    /// <summary>The cluster and destination it was proxied to.</summary>
    public string ClusterId => _cluster;

    public string DestinationId => _destination;

    /// <summary>
    /// The backend accepted: the tunnel keeps its connection. The client's frame rules are set now, when the agreed
    /// extensions are known (RFC 6455 section 5.2: no RSV bit without an extension that defines it).
    /// </summary>
    /// <param name="flushWrites">The backend leg is an HTTP/2 stream, which buffers writes until flushed.</param>
    internal void AttachBackend(Stream backend, bool flushWrites)
    {
        var frames = _handshake.Policy.Options.Frames;
        _fromClient.Configure(fromClient: true, frames.MaxFrameBytes, frames.MaxMessageBytes, _handshake.ClientReservedBits);
        _backend = backend;
        _flushBackend = flushWrites;
    }

    /// <summary>
    /// The client has its 101 (or its 200 on HTTP/2): what the tunnel shows is copied from the request now, and the tunnel
    /// joins the keepalive sweep.
    /// </summary>
    /// <param name="connection">The client's connection when the request ends at the 101 (the tunnel then reaches the
    /// client through it alone); null while the request runs as long as the tunnel.</param>
    /// <param name="ownsSocket">The client stream is the connection's socket itself, taken from the transport
    /// (<c>Gateway:SocketTakeover</c>): cutting the client is closing it.</param>
    internal void Upgraded(Stream client, HttpContext context, IConnectionLifetimeFeature? connection, bool ownsSocket = false)
    {
        _client = client;
        _clientOwnsSocket = ownsSocket;
        if (connection is null)
        {
            _request = context;
            _clientGone = context.RequestAborted;
        }
        else
        {
            _connection = connection;
            _clientGone = connection.ConnectionClosed;
        }
        var now = _sweeper.Now;
        _clientAlive.Start(now);
        _backendAlive.Start(now);
        var proxy = context.GetReverseProxyFeature();
        _cluster = proxy.Cluster?.Config.ClusterId ?? string.Empty;
        _destination = proxy.ProxiedDestination?.DestinationId ?? string.Empty;
        _clientAddress = context.Connection.RemoteIpAddress;
        SetRateLimits(_handshake.Policy);
        if (_accessLog is not null)
        {
            _path = AccessLogEntry.PathOf(context.Request);
            _clientPort = context.Connection.RemotePort;
            (_tlsProtocol, _tlsCipher) = AccessLogEntry.TlsOf(context);
        }
        _tags = RelayMetrics.ConnectionTags(RouteId, _cluster, _destination, _handshake.Protocol, _handshake.Scheme);
        var maxLifetime = (long)_handshake.Policy.Options.Limits.MaxLifetime.TotalMilliseconds;
        if (maxLifetime > 0)
        {
            // Up to a tenth earlier, differently per tunnel: tunnels opened together do not all end together.
            _lifetimeEndsAt = now + maxLifetime - Random.Shared.NextInt64(maxLifetime / 10 + 1);
        }
        if (_handshake.TokenClosesAt is { } tokenClosesAt)
        {
            // On the sweep's clock: the first sweep at or after the token's expiry closes the tunnel.
            _tokenEndsAt = now + Math.Max(0, (long)(tokenClosesAt - _sweeper.Time.GetUtcNow()).TotalMilliseconds);
        }
        _openedTimestamp = _sweeper.Time.GetTimestamp();
        _metrics.Opened(_tags, RouteId, _handshake.Protocol, _sweeper.Time.GetElapsedTime(_createdTimestamp, _openedTimestamp));
        if (_handshake.Span is { } span)
        {
            // The client has its 101: the handshake's span ends here, not with the tunnel, which does not keep it.
            _handshake.Span = null;
            Handshake.HandshakeTracing.Upgraded(span, context, _destination, _handshake.Subprotocol);
        }
        _slot = _sweeper.Register(this);
    }

    /// <summary>Ends the tunnel's bookkeeping (idempotent): leaves the sweep and reports how it ended and what it relayed.</summary>
    internal void Complete()
    {
        if (Interlocked.Exchange(ref _completed, 1) != 0)
        {
            return;
        }
        lock (_contextLock)
        {
            // From here the request may finish at any moment: nothing on another thread reaches its context any more.
            _contextReleased = true;
        }
        _toClient.Abandon();
        _toBackend.Abandon();
        ReturnPending();
        ReturnHeld(ref _clientHeld);
        ReturnHeld(ref _backendHeld);
        _rateLimits?.Release();
        if (_slot < 0)
        {
            return;
        }
        _sweeper.Unregister(_slot, this);
        ReportTraffic(final: true);
        var (closedBy, code) = Outcome();
        var lifetime = _sweeper.Time.GetElapsedTime(_openedTimestamp);
        _metrics.Closed(_tags, RouteId, _cluster, closedBy, code, lifetime);
        if (_accessLog is not null)
        {
            WriteAccessLine(lifetime, code, closedBy);
        }
    }

    private void WriteAccessLine(TimeSpan lifetime, ushort code, string closedBy) => _accessLog!.Write(new AccessLogEntry
    {
        Start = _sweeper.Time.GetUtcNow() - lifetime,
        Client = _clientAddress,
        ClientPort = _clientPort,
        Path = _path,
        Route = RouteId,
        Cluster = _cluster,
        Destination = _destination,
        Protocol = _handshake.Protocol,
        Subprotocol = _handshake.Subprotocol,
        TlsProtocol = _tlsProtocol,
        TlsCipher = _tlsCipher,
        Status = _handshake.IsHttp2 ? StatusCodes.Status200OK : StatusCodes.Status101SwitchingProtocols,
        DurationSeconds = lifetime.TotalSeconds,
        MessagesFromClient = _fromClient.Messages,
        BytesFromClient = _fromClient.PayloadBytes,
        MessagesFromBackend = _fromBackend.Messages,
        BytesFromBackend = _fromBackend.PayloadBytes,
        CloseCode = code,
        ClosedBy = closedBy,
        RateLimited = RateLimitedField(),
    });

    /// <summary>
    /// Adds what was relayed since the last report to the counters: from the sweep while the tunnel is open, and once
    /// more when it completes (<paramref name="final"/> waits for a sweep's report under way, so nothing counts twice).
    /// </summary>
    internal void ReportTraffic(bool final = false)
    {
        if (Interlocked.Exchange(ref _reporting, 1) != 0)
        {
            if (!final)
            {
                return;
            }
            var spin = new SpinWait();
            while (Interlocked.Exchange(ref _reporting, 1) != 0)
            {
                spin.SpinOnce();
            }
        }
        try
        {
            long fromClient = _fromClient.Messages, fromClientBytes = _fromClient.PayloadBytes;
            long fromBackend = _fromBackend.Messages, fromBackendBytes = _fromBackend.PayloadBytes;
            if (fromClient != _reportedFromClient.Messages || fromClientBytes != _reportedFromClient.Bytes
                || fromBackend != _reportedFromBackend.Messages || fromBackendBytes != _reportedFromBackend.Bytes)
            {
                _metrics.Relayed(RouteId,
                    fromClient - _reportedFromClient.Messages, fromClientBytes - _reportedFromClient.Bytes,
                    fromBackend - _reportedFromBackend.Messages, fromBackendBytes - _reportedFromBackend.Bytes);
                _reportedFromClient = (fromClient, fromClientBytes);
                _reportedFromBackend = (fromBackend, fromBackendBytes);
            }
        }
        finally
        {
            Volatile.Write(ref _reporting, 0);
        }
    }

    private int _reporting;
    private (long Messages, long Bytes) _reportedFromClient;
    private (long Messages, long Bytes) _reportedFromBackend;
}
