using Gateway.Listeners;
using Gateway.AccessLogging;
using System.Diagnostics;
using Gateway.Handshake;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;
using Yarp.ReverseProxy.Model;

namespace Gateway.Relay;

/// <summary>
/// One proxied WebSocket as the gateway sees it. It stands in for the request's upgrade feature (HTTP/1.1) or
/// extended-CONNECT feature (HTTP/2, RFC 8441) and for the backend's 101 content, so that YARP forwards the handshake
/// as usual and then finds nothing to copy: the tunnel keeps both connections and relays them itself
/// (<c>.Pumps.cs</c>), one loop per direction, until both have ended. Both directions are followed frame by frame on
/// the way in (headers scanned, payloads passed by count); the gateway's own frames go out through one
/// <see cref="FrameGate"/> per peer.
/// </summary>
/// <remarks>
/// The type is split by job, as <c>ManagedWebSocket</c> is: the loops (<c>.Pumps.cs</c>), the client read path
/// (<c>.ClientReads.cs</c>), the backend read path (<c>.BackendReads.cs</c>), the write paths (<c>.Writes.cs</c>),
/// keepalive (<c>.KeepAlive.cs</c>) and closing, where who closed, with which code and what is counted is decided
/// (<c>.Closing.cs</c>).
/// A peer that vanished ends its direction (a read returns 0, a write is dropped) and the tunnel records the outcome
/// itself, so nothing is logged as a proxy error for it and passive health hears only what the relay says was the
/// backend's fault.
/// </remarks>
internal sealed partial class RelayTunnel : IHttpUpgradeFeature, IHttpExtendedConnectFeature
{
    private readonly HttpContext _context;
    private readonly WebSocketHandshake _handshake;
    private readonly IHttpUpgradeFeature? _upgrade;
    private readonly IHttpExtendedConnectFeature? _connect;
    private readonly KeepAliveSweeper _sweeper;
    private readonly RelayMetrics _metrics;
    private readonly ILogger _logger;
    private readonly AccessLogWriter? _accessLog;

    private Stream? _client;
    private Stream? _backend;
    private int _slot = -1;
    private int _completed;

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

    internal RelayTunnel(HttpContext context, WebSocketHandshake handshake, IHttpUpgradeFeature? upgrade, IHttpExtendedConnectFeature? connect,
        KeepAliveSweeper sweeper, RelayMetrics metrics, ILogger logger, AccessLogWriter? accessLog)
    {
        _context = context;
        _handshake = handshake;
        _upgrade = upgrade;
        _connect = connect;
        _sweeper = sweeper;
        _metrics = metrics;
        _logger = logger;
        _accessLog = accessLog;
        _createdTimestamp = sweeper.Time.GetTimestamp();
        var options = handshake.Policy.Options;
        _policyVersion = sweeper.Policies.Version;
        SetKeepAlive(handshake.Policy);
        // The backend direction is passed as it is (any RSV bit, any opcode): the gateway protects the backend from
        // clients, and what the backend sends is between it and its client.
        _fromBackend.Configure(fromClient: false, maxFrameBytes: 0, maxMessageBytes: 0, allowedReservedBits: WebSocketFrame.ReservedBits);
        // No RSV bit until the backend's answer says which extensions were agreed (AttachBackend).
        _fromClient.Configure(fromClient: true, options.Frames.MaxFrameBytes, options.Frames.MaxMessageBytes, allowedReservedBits: 0);
    }

    /// <summary>The route the tunnel belongs to.</summary>
    public string RouteId => _handshake.RouteId;

    /// <summary>The cluster and destination it was proxied to (empty until the backend accepted).</summary>
    public string ClusterId => _cluster;

    public string DestinationId => _destination;

    // ---- The features YARP's forwarder calls to upgrade the client connection ----

    bool IHttpUpgradeFeature.IsUpgradableRequest => _upgrade?.IsUpgradableRequest ?? false;

    async Task<Stream> IHttpUpgradeFeature.UpgradeAsync()
    {
        var upgraded = await _upgrade!.UpgradeAsync().ConfigureAwait(false);
        // Kestrel has flushed the 101: from here its HTTP/1.1 layer only passes bytes, so the relay reads and writes the
        // connection's transport (TLS included) itself when the server exposes it.
        _client = _context.Features.Get<IConnectionTransportFeature>()?.Transport is { } transport
            ? new ClientTransportStream(transport)
            : upgraded;
        OnUpgraded();
        return FinishedStream.Instance;
    }

    bool IHttpExtendedConnectFeature.IsExtendedConnect => _connect?.IsExtendedConnect ?? false;

    string? IHttpExtendedConnectFeature.Protocol => _connect?.Protocol;

    async ValueTask<Stream> IHttpExtendedConnectFeature.AcceptAsync()
    {
        _client = await _connect!.AcceptAsync().ConfigureAwait(false);
        OnUpgraded();
        return FinishedStream.Instance;
    }

    /// <summary>
    /// Called by the response transform when the backend accepted, with the backend's connection: the tunnel keeps it,
    /// and YARP gets a stream with nothing to copy. The client's frame rules are set now, when the agreed extensions are
    /// known.
    /// </summary>
    /// <param name="flushWrites">The backend leg is an HTTP/2 stream, which buffers writes until flushed.</param>
    internal Stream AttachBackend(Stream backend, bool flushWrites)
    {
        var frames = _handshake.Policy.Options.Frames;
        _fromClient.Configure(fromClient: true, frames.MaxFrameBytes, frames.MaxMessageBytes, _handshake.ClientReservedBits);
        _backend = backend;
        _flushBackend = flushWrites;
        return FinishedStream.Instance;
    }

    private void OnUpgraded()
    {
        var now = _sweeper.Now;
        _clientAlive.Start(now);
        _backendAlive.Start(now);
        var proxy = _context.GetReverseProxyFeature();
        _cluster = proxy.Cluster?.Config.ClusterId ?? string.Empty;
        _destination = proxy.ProxiedDestination?.DestinationId ?? string.Empty;
        _clientAddress = _context.Connection.RemoteIpAddress;
        if (_accessLog is not null)
        {
            _path = AccessLogEntry.PathOf(_context.Request);
            _clientPort = _context.Connection.RemotePort;
            (_tlsProtocol, _tlsCipher) = AccessLogEntry.TlsOf(_context);
        }
        _tags = RelayMetrics.ConnectionTags(RouteId, _cluster, _destination, _handshake.Protocol, _handshake.Scheme);
        var maxLifetime = (long)_handshake.Policy.Options.Limits.MaxLifetime.TotalMilliseconds;
        if (maxLifetime > 0)
        {
            // Up to a tenth earlier, differently per tunnel: tunnels opened together do not all end together.
            _lifetimeEndsAt = now + maxLifetime - Random.Shared.NextInt64(maxLifetime / 10 + 1);
        }
        _openedTimestamp = _sweeper.Time.GetTimestamp();
        _metrics.Opened(_tags, RouteId, _handshake.Protocol, _sweeper.Time.GetElapsedTime(_createdTimestamp, _openedTimestamp));
        if (_handshake.Span is { } span)
        {
            // The client has its 101: the handshake's span ends here, not with the tunnel, which does not keep it.
            _handshake.Span = null;
            Handshake.HandshakeTracing.Upgraded(span, _context, _destination, _handshake.Subprotocol);
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
