using System.Buffers;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Security.Cryptography;
using Gateway.KeepAlive;
using Gateway.Policies;
using Microsoft.AspNetCore.Http.Features;
using Yarp.ReverseProxy.Model;

namespace Gateway.Relay;

/// <summary>
/// One proxied WebSocket as the gateway sees it. It stands in for the request's upgrade feature (HTTP/1.1) or
/// extended-CONNECT feature (HTTP/2, RFC 8441), so YARP's copy loops read and write the client side of the tunnel
/// through it, the interception pattern of YARP's own WebSocketsTelemetry. On the way it follows the frames of
/// both directions, injects pings at frame boundaries, swallows the pongs that answer them, enforces the
/// policy's frame rules and closes both sides properly when a peer stops answering or breaks a rule.
/// The backend side is reached through the stream YARP got for the backend's 101 response (attached by a
/// response transform); the gateway writes to it only while YARP's client-to-backend loop is parked in a read
/// from this stream, so its frames never interleave with YARP's.
/// </summary>
/// <remarks>One object per tunnel (feature and stream at once) keeps an idle tunnel's state small.</remarks>
public sealed class RelayTunnel : Stream, IHttpUpgradeFeature, IHttpExtendedConnectFeature
{
    // Client write gate: who may write to the client stream.
    private const int ClientIdle = 0;
    private const int ClientYarpWriting = 1;
    private const int ClientInjecting = 2;

    // Backend write gate: YARP writes to the backend only between its reads from this stream.
    private const int BackendYarpActive = 0;
    private const int BackendYarpParked = 1;
    private const int BackendInjecting = 2;

    /// <summary>How long a gateway-initiated close waits for a frame boundary, and for the peers to finish, before it cuts.</summary>
    private const int CloseGraceMs = 2000;

    /// <summary>
    /// What the tunnel reads by itself while a pong is due: a pong to the gateway's ping is 14 bytes (RFC 6455 §5.5.3,
    /// masked, 8-byte payload), and anything longer that arrives then goes on to YARP in pieces of this size.
    /// </summary>
    private const int PongReadLength = 256;

    private static readonly ulong PingSecret = BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8));

    private readonly HttpContext _context;
    private readonly IHttpUpgradeFeature? _upgrade;
    private readonly IHttpExtendedConnectFeature? _connect;
    private readonly KeepAliveSweeper _sweeper;
    private readonly RelayMetrics _metrics;
    private readonly ILogger _logger;
    private readonly string _route;
    private readonly long _intervalMs;
    private readonly long _pingAfterMs;
    private readonly long _timeoutMs;
    private readonly bool _keepAlive;
    private readonly bool _backendKeepAlive;

    private Stream? _client;
    private Stream? _backend;
    private int _slot = -1;
    private int _disposed;

    private FrameScanner _fromClient;
    private FrameScanner _fromBackend;
    private byte[]? _readCarry;
    private int _readCarryLength;
    private byte[]? _pending;
    private int _pendingOffset;
    private int _pendingLength;
    private byte[]? _writeCarry;
    private int _writeCarryLength;

    private int _clientGate;
    private int _backendGate;
    private int _clientInjector;
    private int _backendInjector;
    private TaskCompletionSource? _clientInjection;
    private TaskCompletionSource? _backendInjection;

    private long _lastClientRead;
    private long _lastClientWrite;
    private long _lastBackendRead;
    private long _lastBackendWrite;
    private PingState _clientPing;
    private PingState _backendPing;

    // Metrics: what the tunnel is, when it started, who ended it.
    private readonly long _createdTimestamp = Stopwatch.GetTimestamp();
    private long _openedTimestamp;
    private TagList _tags;
    private string _cluster = string.Empty;
    private string? _closedBy;
    private ushort _closeCode;
    private volatile bool _clientEnded;

    private int _closing;
    private long _abortAt;
    private volatile bool _readEnded;
    private volatile bool _clientClosedByGateway;
    private volatile bool _dropBackendFrames;
    private volatile bool _clientViolation;
    private volatile bool _backendViolation;

    internal RelayTunnel(HttpContext context, IHttpUpgradeFeature? upgrade, IHttpExtendedConnectFeature? connect,
        WebSocketPolicy policy, string route, KeepAliveSweeper sweeper, RelayMetrics metrics, ILogger logger)
    {
        _context = context;
        _upgrade = upgrade;
        _connect = connect;
        _route = route;
        _sweeper = sweeper;
        _metrics = metrics;
        _logger = logger;
        var options = policy.Options;
        _keepAlive = policy.KeepAliveEnabled;
        _backendKeepAlive = _keepAlive && options.KeepAlive.Backend;
        _intervalMs = (long)options.KeepAlive.Interval.TotalMilliseconds;
        // Up to a quarter of the interval earlier, differently per tunnel: tunnels opened in one burst would otherwise be
        // pinged in one sweep, and all their pongs (and the buffers to read them) would arrive at once.
        _pingAfterMs = _intervalMs - (_intervalMs > 3 ? Random.Shared.NextInt64(_intervalMs / 4) : 0);
        _timeoutMs = (long)options.KeepAlive.Timeout.TotalMilliseconds;
        // RSV1 stays allowed until the 101's Sec-WebSocket-Extensions are wired in (WebSocketExtensions.AllowedReservedBits):
        // browsers negotiate permessage-deflate whenever the backend offers it.
        _fromClient.Configure(fromClient: true, options.Frames.MaxFrameBytes, options.Frames.MaxMessageBytes, allowedReservedBits: WebSocketFrame.Rsv1);
        _fromBackend.Configure(fromClient: false, maxFrameBytes: 0, maxMessageBytes: 0, allowedReservedBits: WebSocketFrame.ReservedBits);
    }

    /// <summary>True once the client side was upgraded and the tunnel carries frames.</summary>
    public bool IsOpen => _client is not null && Volatile.Read(ref _disposed) == 0;

    /// <summary>True when the backend side can be written to (a 101 from an HTTP/1.1 backend).</summary>
    public bool HasBackend => _backend is not null;

    // ---- The features YARP calls to upgrade the client connection ----

    bool IHttpUpgradeFeature.IsUpgradableRequest => _upgrade?.IsUpgradableRequest ?? false;

    async Task<Stream> IHttpUpgradeFeature.UpgradeAsync()
    {
        _client = await _upgrade!.UpgradeAsync().ConfigureAwait(false);
        OnUpgraded();
        return this;
    }

    bool IHttpExtendedConnectFeature.IsExtendedConnect => _connect?.IsExtendedConnect ?? false;

    string? IHttpExtendedConnectFeature.Protocol => _connect?.Protocol;

    async ValueTask<Stream> IHttpExtendedConnectFeature.AcceptAsync()
    {
        _client = await _connect!.AcceptAsync().ConfigureAwait(false);
        OnUpgraded();
        return this;
    }

    /// <summary>Called by the response transform with the stream YARP will copy the backend's frames from.</summary>
    internal void AttachBackend(Stream backend) => _backend = backend;

    private void OnUpgraded()
    {
        var now = Environment.TickCount64;
        _lastClientRead = _lastClientWrite = _lastBackendRead = _lastBackendWrite = now;
        var proxy = _context.GetReverseProxyFeature();
        _cluster = proxy.Cluster?.Config.ClusterId ?? string.Empty;
        var protocol = _upgrade is not null ? "HTTP/1.1" : "HTTP/2";
        _tags = RelayMetrics.ConnectionTags(_route, _cluster, proxy.ProxiedDestination?.DestinationId ?? string.Empty, protocol,
            _context.Request.IsHttps ? "wss" : "ws");
        _openedTimestamp = Stopwatch.GetTimestamp();
        _metrics.Opened(_tags, _route, protocol, Stopwatch.GetElapsedTime(_createdTimestamp, _openedTimestamp));
        _slot = _sweeper.Register(this);
    }

    /// <summary>Remembers who ended the tunnel first, and with which code; later closes do not change it.</summary>
    private void SetClosedBy(string closedBy, ushort code)
    {
        if (Interlocked.CompareExchange(ref _closedBy, closedBy, null) is null)
        {
            _closeCode = code;
        }
    }

    // ---- Client to backend: YARP reads the client through these ----

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_readEnded)
        {
            return new ValueTask<int>(0);
        }
        if (_pendingLength > 0)
        {
            return new ValueTask<int>(TakePending(buffer.Span));
        }
        if (_clientViolation)
        {
            return CloseForClientViolationAsync();
        }
        if (_fromClient.CloseCode != 0 && _fromClient.AtFrameBoundary)
        {
            return new ValueTask<int>(EndAfterClientClose());
        }
        return buffer.IsEmpty ? ZeroByteReadAsync(cancellationToken) : ReadCoreAsync(buffer, cancellationToken);
    }

    /// <summary>
    /// The client's Close has gone to the backend, and after it the client sends nothing more (RFC 6455 §5.5.1): the
    /// client-to-backend copy ends here instead of leaving YARP's read pending. When the backend then hangs up,
    /// YARP finds the other direction finished and needs no cancellation, which would unwind as a chain of
    /// OperationCanceledExceptions through every stream layer (about five per tunnel, ten over TLS). A backend that
    /// never closes is cut after the close grace.
    /// </summary>
    private int EndAfterClientClose()
    {
        _readEnded = true;
        BeginClosing(); // only for its deadline: a close already under way keeps its own
        return 0;
    }

    /// <summary>
    /// YARP's idle wait: no buffer is held, and while it is parked here the gateway may write to the backend.
    /// When data arrives while a pong is due, the tunnel reads it itself into a small buffer: YARP rents its 64 KiB
    /// buffer as soon as this wait ends and keeps it until a read returns data, so handing it a pong that is then
    /// swallowed would leave every idle tunnel holding 64 KiB until its client next spoke.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> ZeroByteReadAsync(CancellationToken cancellationToken)
    {
        Volatile.Write(ref _backendGate, BackendYarpParked);
        try
        {
            while (true)
            {
                await _client!.ReadAsync(Memory<byte>.Empty, cancellationToken).ConfigureAwait(false);
                if (!Volatile.Read(ref _clientPing.Outstanding) || _readEnded)
                {
                    break;
                }
                var small = ArrayPool<byte>.Shared.Rent(PongReadLength);
                var held = _readCarryLength;
                _readCarry.AsSpan(0, held).CopyTo(small);
                int read;
                try
                {
                    read = await _client.ReadAsync(small.AsMemory(held, PongReadLength - held), cancellationToken).ConfigureAwait(false);
                }
                catch
                {
                    ArrayPool<byte>.Shared.Return(small);
                    throw;
                }
                var produced = 0;
                if (read > 0)
                {
                    _readCarryLength = 0;
                    produced = OnReadFromClient(small.AsSpan(0, held + read));
                }
                if (produced > 0)
                {
                    // Not (only) a pong: YARP gets these bytes from its next read, before anything newer.
                    (_pending, _pendingOffset, _pendingLength) = (small, 0, produced);
                    break;
                }
                ArrayPool<byte>.Shared.Return(small);
                if (read == 0 || _clientViolation)
                {
                    // End of stream (YARP's next read meets it, with any held bytes, as ReadCoreAsync hands them on)
                    // or a broken rule (YARP's next read closes the tunnel).
                    break;
                }
                // The pong was swallowed (or half a header is held): keep waiting, holding no buffer.
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // The client's connection broke (a browser tab closed, an HTTP/2 connection reset): the client ended it.
            _clientEnded = true;
            throw;
        }
        finally
        {
            await LeaveParkedAsync().ConfigureAwait(false);
        }
        return 0;
    }

    /// <summary>Hands YARP the bytes the tunnel read while waiting for a pong.</summary>
    private int TakePending(Span<byte> destination)
    {
        if (destination.IsEmpty)
        {
            return 0; // a zero-byte read: data is ready
        }
        var count = Math.Min(destination.Length, _pendingLength);
        _pending.AsSpan(_pendingOffset, count).CopyTo(destination);
        _pendingOffset += count;
        _pendingLength -= count;
        if (_pendingLength == 0)
        {
            ArrayPool<byte>.Shared.Return(_pending!);
            _pending = null;
        }
        return count;
    }

    /// <summary>Notes the client's activity and filters what it sent; returns the bytes that go on to the backend.</summary>
    private int OnReadFromClient(Span<byte> data)
    {
        var now = Environment.TickCount64;
        Volatile.Write(ref _lastClientRead, now);
        var produced = FilterFromClient(data);
        if (_fromClient.CloseCode != 0 && _closedBy is null)
        {
            SetClosedBy(RelayMetrics.ClosedBy.Client, _fromClient.CloseCode);
        }
        if (produced > 0)
        {
            Volatile.Write(ref _lastBackendWrite, now);
        }
        return produced;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> ReadCoreAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        if (buffer.Length <= WebSocketFrame.MaxHeaderLength + 2)
        {
            throw new ArgumentException("the relay needs read buffers longer than a frame header", nameof(buffer));
        }
        var filled = TakeReadCarry(buffer.Span);
        var idleFirst = false;
        while (true)
        {
            if (idleFirst)
            {
                // Everything read so far was swallowed (a pong) or held (half a header): wait for more without YARP's
                // 64 KiB buffer, as YARP itself does between reads, so an idle tunnel holds no buffer.
                await ZeroByteReadAsync(cancellationToken).ConfigureAwait(false);
                if (_pendingLength > 0)
                {
                    return TakePending(buffer.Span);
                }
                if (_clientViolation || _readEnded)
                {
                    return 0;
                }
                filled = TakeReadCarry(buffer.Span);
            }
            int read;
            Volatile.Write(ref _backendGate, BackendYarpParked);
            try
            {
                read = await _client!.ReadAsync(buffer[filled..], cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                _clientEnded = true;
                throw;
            }
            finally
            {
                await LeaveParkedAsync().ConfigureAwait(false);
            }

            if (read == 0)
            {
                // The client ended the stream; whatever was held back goes on as it is.
                _clientEnded = true;
                return filled;
            }
            filled += read;
            var produced = OnReadFromClient(buffer.Span[..filled]);
            if (produced > 0)
            {
                return produced;
            }
            if (_clientViolation)
            {
                return await CloseForClientViolationAsync().ConfigureAwait(false);
            }
            // Everything read was a swallowed pong or part of a header: never return 0 (end of stream) for it.
            // A held header stays in the carry while waiting: the wait may read (and scan) what follows it.
            filled = 0;
            idleFirst = true;
        }
    }

    /// <summary>Compacts <paramref name="data"/> in place: drops the gateway's pongs, holds back a split header.</summary>
    private int FilterFromClient(Span<byte> data)
    {
        int read = 0, write = 0;
        var pongExpected = Volatile.Read(ref _clientPing.Outstanding);
        var expected = _clientPing.Payload;
        while (read < data.Length)
        {
            switch (_fromClient.Scan(data[read..], pongExpected, expected, out var length))
            {
                case ScanResult.Pass:
                    if (write != read)
                    {
                        data.Slice(read, length).CopyTo(data[write..]);
                    }
                    write += length;
                    read += length;
                    break;
                case ScanResult.Swallow:
                    read += length;
                    pongExpected = false;
                    OnPong(ref _clientPing, "client");
                    break;
                case ScanResult.NeedMore:
                    var rest = data[read..];
                    _readCarry ??= new byte[WebSocketFrame.MaxHeaderLength + 2];
                    rest.CopyTo(_readCarry);
                    _readCarryLength = rest.Length;
                    read = data.Length;
                    break;
                case ScanResult.Violation:
                    // Nothing from the offending frame on is forwarded.
                    _clientViolation = true;
                    read = data.Length;
                    break;
            }
        }
        return write;
    }

    private int TakeReadCarry(Span<byte> destination)
    {
        var length = _readCarryLength;
        if (length > 0)
        {
            _readCarry.AsSpan(0, length).CopyTo(destination);
            _readCarryLength = 0;
        }
        return length;
    }

    private ValueTask LeaveParkedAsync()
    {
        return Interlocked.CompareExchange(ref _backendGate, BackendYarpActive, BackendYarpParked) == BackendInjecting
            ? WaitForBackendInjectionAsync()
            : default;
    }

    private async ValueTask WaitForBackendInjectionAsync()
    {
        while (Interlocked.CompareExchange(ref _backendGate, BackendYarpActive, BackendYarpParked) == BackendInjecting)
        {
            await Volatile.Read(ref _backendInjection)!.Task.ConfigureAwait(false);
        }
    }

    // ---- Backend to client: YARP writes the backend's bytes through these ----

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken = default)
    {
        Volatile.Write(ref _lastBackendRead, Environment.TickCount64);
        if (_clientClosedByGateway || _dropBackendFrames || data.IsEmpty)
        {
            // The gateway closed the client side: what the backend still says has no one to go to.
            return default;
        }
        return WriteCoreAsync(data, cancellationToken);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask WriteCoreAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        while (Interlocked.CompareExchange(ref _clientGate, ClientYarpWriting, ClientIdle) != ClientIdle)
        {
            await Volatile.Read(ref _clientInjection)!.Task.ConfigureAwait(false);
        }
        var wrote = false;
        try
        {
            var offset = 0;
            if (_writeCarryLength > 0)
            {
                (offset, wrote) = await CompleteWriteCarryAsync(data, cancellationToken).ConfigureAwait(false);
            }
            var runStart = offset;
            while (offset < data.Length && !_backendViolation)
            {
                var pongExpected = Volatile.Read(ref _backendPing.Outstanding);
                switch (_fromBackend.Scan(data.Span[offset..], pongExpected, _backendPing.Payload, out var length))
                {
                    case ScanResult.Pass:
                        offset += length;
                        break;
                    case ScanResult.Swallow:
                        if (offset > runStart)
                        {
                            await _client!.WriteAsync(data[runStart..offset], cancellationToken).ConfigureAwait(false);
                            wrote = true;
                        }
                        offset += length;
                        runStart = offset;
                        OnPong(ref _backendPing, "backend");
                        break;
                    case ScanResult.NeedMore:
                        _writeCarry ??= new byte[WebSocketFrame.MaxHeaderLength + 2];
                        data.Span[offset..].CopyTo(_writeCarry);
                        _writeCarryLength = data.Length - offset;
                        data = data[..offset];
                        break;
                    case ScanResult.Violation:
                        _backendViolation = true;
                        data = data[..offset];
                        break;
                }
            }
            if (offset > runStart)
            {
                await _client!.WriteAsync(data[runStart..offset], cancellationToken).ConfigureAwait(false);
                wrote = true;
            }
        }
        finally
        {
            if (wrote)
            {
                Volatile.Write(ref _lastClientWrite, Environment.TickCount64);
            }
            if (_fromBackend.CloseCode != 0 && _closedBy is null)
            {
                SetClosedBy(RelayMetrics.ClosedBy.Backend, _fromBackend.CloseCode);
            }
            Volatile.Write(ref _clientGate, ClientIdle);
        }
        if (_backendViolation)
        {
            _ = CloseForBackendViolationAsync();
        }
    }

    /// <summary>Finishes a header held back from the previous write with the first bytes of this one.</summary>
    private async ValueTask<(int Offset, bool Wrote)> CompleteWriteCarryAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        var carry = _writeCarry!;
        var held = _writeCarryLength;
        var taken = Math.Min(carry.Length - held, data.Length);
        data.Span[..taken].CopyTo(carry.AsSpan(held));
        var result = _fromBackend.Scan(carry.AsSpan(0, held + taken), Volatile.Read(ref _backendPing.Outstanding), _backendPing.Payload, out var length);
        switch (result)
        {
            case ScanResult.NeedMore:
                // Still not a whole header: all of this write is held too.
                _writeCarryLength = held + taken;
                return (data.Length, false);
            case ScanResult.Swallow:
                _writeCarryLength = 0;
                OnPong(ref _backendPing, "backend");
                return (length - held, false);
            case ScanResult.Violation:
                _writeCarryLength = 0;
                _backendViolation = true;
                return (data.Length, false);
            default:
                _writeCarryLength = 0;
                await _client!.WriteAsync(carry.AsMemory(0, length), cancellationToken).ConfigureAwait(false);
                return (length - held, true);
        }
    }

    // ---- Keepalive, driven by the sweeper ----

    internal void OnSweep(long now)
    {
        if (Volatile.Read(ref _closing) != 0)
        {
            var abortAt = Volatile.Read(ref _abortAt);
            if (abortAt != 0 && now >= abortAt)
            {
                Volatile.Write(ref _abortAt, 0);
                _context.Abort();
            }
            return;
        }
        if (_keepAlive)
        {
            if (IsPeerSilent(ref _clientPing, Volatile.Read(ref _lastClientRead), now))
            {
                _ = ReapClientAsync();
                return;
            }
            if (IsPingDue(ref _clientPing, Volatile.Read(ref _lastClientWrite), now))
            {
                _ = PingAsync(toBackend: false, now);
            }
        }
        if (_backendKeepAlive && _backend is not null)
        {
            if (IsPeerSilent(ref _backendPing, Volatile.Read(ref _lastBackendRead), now))
            {
                _ = ReapBackendAsync();
                return;
            }
            if (IsPingDue(ref _backendPing, Volatile.Read(ref _lastBackendWrite), now))
            {
                _ = PingAsync(toBackend: true, now);
            }
        }
    }

    /// <summary>A ping is out and the peer has sent nothing at all for the timeout since it (or since its last bytes).</summary>
    private bool IsPeerSilent(ref PingState ping, long lastHeard, long now) =>
        Volatile.Read(ref ping.Outstanding) && now - Math.Max(ping.SentAtMs, lastHeard) >= _timeoutMs;

    /// <summary>
    /// Nothing was sent toward the peer for the interval and no ping is waiting for its pong. One ping at a time:
    /// a peer may answer only the latest of several pings (RFC 6455 §5.5.2), and a pong to a ping the gateway
    /// no longer expects would reach the other side. A peer that is alive but ignores pings is still heard from
    /// by its traffic, and silence after the ping gets it reaped.
    /// </summary>
    private bool IsPingDue(ref PingState ping, long lastSent, long now) =>
        !Volatile.Read(ref ping.Outstanding) && now - lastSent >= _pingAfterMs;

    /// <summary>
    /// Sends a ping to one side: unmasked toward the client, masked toward the backend (RFC 6455 §5.3), between YARP's
    /// writes and at a frame boundary. If the moment is wrong (YARP busy, mid-frame), the next sweep tries again.
    /// </summary>
    private async Task PingAsync(bool toBackend, long now)
    {
        if (Interlocked.Exchange(ref PingOf(toBackend).InFlight, 1) == 1)
        {
            return;
        }
        var frame = ArrayPool<byte>.Shared.Rent(WebSocketFrame.MaxControlFrameLength);
        var previous = PingOf(toBackend);
        try
        {
            var payload = NextPingPayload();
            var length = WebSocketFrame.WritePing(frame, payload, masked: toBackend);
            // Expect the pong before the ping leaves: a fast peer may answer before the write returns.
            Arm(ref PingOf(toBackend), payload, now);
            var sent = toBackend
                ? await TryWriteToBackendAsync(frame.AsMemory(0, length), waitMs: 0).ConfigureAwait(false)
                : await TryWriteToClientAsync(frame.AsMemory(0, length), waitMs: 0).ConfigureAwait(false);
            if (sent)
            {
                Volatile.Write(ref toBackend ? ref _lastBackendWrite : ref _lastClientWrite, now);
                _metrics.PingSent(toBackend ? "backend" : "client");
            }
            else
            {
                Restore(ref PingOf(toBackend), previous);
            }
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or OperationCanceledException or InvalidOperationException)
        {
            // The connection failed under the ping (or the tunnel went away): a dead peer, which the sweep reaps
            // once the timeout passes, since the ping stays expected and unanswered.
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(frame);
            Volatile.Write(ref PingOf(toBackend).InFlight, 0);
        }
    }

    private ref PingState PingOf(bool backend) => ref backend ? ref _backendPing : ref _clientPing;

    private static void Arm(ref PingState ping, ulong payload, long now)
    {
        ping.Payload = payload;
        ping.SentAtMs = now;
        ping.SentTimestamp = Stopwatch.GetTimestamp();
        Volatile.Write(ref ping.Outstanding, true);
    }

    private static void Restore(ref PingState ping, PingState previous)
    {
        ping.Payload = previous.Payload;
        ping.SentAtMs = previous.SentAtMs;
        ping.SentTimestamp = previous.SentTimestamp;
        Volatile.Write(ref ping.Outstanding, previous.Outstanding);
    }

    private void OnPong(ref PingState ping, string side)
    {
        Volatile.Write(ref ping.Outstanding, false);
        _metrics.PongReceived(side, Stopwatch.GetElapsedTime(ping.SentTimestamp));
    }

    private static ulong NextPingPayload() => (ulong)Stopwatch.GetTimestamp() ^ PingSecret;

    // ---- Closes the gateway initiates ----

    private async Task ReapClientAsync()
    {
        if (!BeginClosing())
        {
            return;
        }
        SetClosedBy(RelayMetrics.ClosedBy.GatewayReaped, 1001);
        _metrics.Reaped("client", _route);
        Log.ClientReaped(_logger, _route, 1001, 1001);
        // The backend's answer to our Close is not for a client that is gone (and would precede the client's own Close).
        _dropBackendFrames = true;
        // The client is silent, so YARP is parked reading it: the backend hears a proper goodbye at a frame boundary.
        await SendCloseToBackendAsync(1001, "client stopped responding").ConfigureAwait(false);
        // The client gets one too if its connection still takes it, but nobody waits for a peer that is gone.
        var toClient = SendCloseToClientAsync(1001, "ping timeout");
        await Task.WhenAny(toClient, Task.Delay(250)).ConfigureAwait(false);
        _context.Abort();
    }

    private async Task ReapBackendAsync()
    {
        if (!BeginClosing())
        {
            return;
        }
        SetClosedBy(RelayMetrics.ClosedBy.GatewayReaped, 1011);
        _metrics.Reaped("backend", _route);
        Log.BackendReaped(_logger, _route, 1011);
        await SendCloseToClientAsync(1011, "backend not responding").ConfigureAwait(false);
        _readEnded = true;
        // Ending the backend stream ends YARP's backend-to-client loop; YARP then tears the tunnel down and the
        // client connection closes after the Close frame already written.
        _backend?.Dispose();
    }

    /// <summary>Runs inside YARP's read (so YARP is not writing to the backend): both sides get their Close, YARP gets end of stream.</summary>
    private async ValueTask<int> CloseForClientViolationAsync()
    {
        _readEnded = true;
        if (BeginClosing())
        {
            var code = _fromClient.ViolationCode;
            var reason = _fromClient.ViolationReason ?? "protocol error";
            SetClosedBy(RelayMetrics.ClosedBy.GatewayLimit, code);
            Log.ClientViolation(_logger, _route, reason, code, 1001);
            // The client's Close goes first: after it nothing more reaches the client, so the backend's answer to
            // its own Close (next) cannot overtake the code that says what the client did wrong.
            await SendCloseToClientAsync(code, reason).ConfigureAwait(false);
            _dropBackendFrames = true;
            if (_backend is not null)
            {
                var frame = ArrayPool<byte>.Shared.Rent(WebSocketFrame.MaxControlFrameLength);
                try
                {
                    var length = WebSocketFrame.WriteClose(frame, 1001, "client closed by gateway", masked: true);
                    await _backend.WriteAsync(frame.AsMemory(0, length)).ConfigureAwait(false);
                    _metrics.GatewayClose("backend", 1001, _route);
                }
                catch (Exception ex) when (ex is IOException or ObjectDisposedException or OperationCanceledException)
                {
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(frame);
                }
            }
        }
        return 0;
    }

    private async Task CloseForBackendViolationAsync()
    {
        if (!BeginClosing())
        {
            return;
        }
        var reason = _fromBackend.ViolationReason ?? "protocol error";
        SetClosedBy(RelayMetrics.ClosedBy.GatewayLimit, 1014);
        Log.BackendViolation(_logger, _route, reason, 1014, _fromBackend.ViolationCode);
        await SendCloseToClientAsync(1014, "bad gateway: backend broke protocol").ConfigureAwait(false);
        await SendCloseToBackendAsync(_fromBackend.ViolationCode, reason).ConfigureAwait(false);
        _readEnded = true;
        _backend?.Dispose();
    }

    /// <summary>Shutdown: both sides hear 1001 "going away" (RFC 6455 §7.4.1) instead of a cut connection.</summary>
    internal async Task DrainAsync()
    {
        if (!BeginClosing())
        {
            return;
        }
        SetClosedBy(RelayMetrics.ClosedBy.Drain, 1001);
        await SendCloseToClientAsync(1001, "gateway shutting down").ConfigureAwait(false);
        _dropBackendFrames = true;
        await SendCloseToBackendAsync(1001, "gateway shutting down").ConfigureAwait(false);
        _readEnded = true;
    }

    private bool BeginClosing()
    {
        if (Interlocked.Exchange(ref _closing, 1) != 0)
        {
            return false;
        }
        Volatile.Write(ref _abortAt, Environment.TickCount64 + 2 * CloseGraceMs);
        return true;
    }

    private async Task SendCloseToClientAsync(ushort code, string reason)
    {
        var frame = ArrayPool<byte>.Shared.Rent(WebSocketFrame.MaxControlFrameLength);
        try
        {
            var length = WebSocketFrame.WriteClose(frame, code, reason, masked: false);
            if (await TryWriteToClientAsync(frame.AsMemory(0, length), CloseGraceMs, thenStopForwarding: true).ConfigureAwait(false))
            {
                _metrics.GatewayClose("client", code, _route);
            }
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or OperationCanceledException or InvalidOperationException)
        {
            // The client connection is already gone.
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(frame);
        }
    }

    private async Task SendCloseToBackendAsync(ushort code, string reason)
    {
        var frame = ArrayPool<byte>.Shared.Rent(WebSocketFrame.MaxControlFrameLength);
        try
        {
            var length = WebSocketFrame.WriteClose(frame, code, reason, masked: true);
            if (await TryWriteToBackendAsync(frame.AsMemory(0, length), CloseGraceMs).ConfigureAwait(false))
            {
                _metrics.GatewayClose("backend", code, _route);
            }
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or OperationCanceledException or InvalidOperationException)
        {
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(frame);
        }
    }

    /// <summary>Writes a frame of the gateway's own to the client, between YARP's writes and at a frame boundary.</summary>
    private async Task<bool> TryWriteToClientAsync(ReadOnlyMemory<byte> frame, int waitMs, bool thenStopForwarding = false)
    {
        var deadline = Environment.TickCount64 + waitMs;
        while (_client is { } client && Volatile.Read(ref _disposed) == 0)
        {
            // One injector at a time (a ping and a close may race): only the holder publishes the task YARP waits on.
            if (Interlocked.CompareExchange(ref _clientInjector, 1, 0) != 0)
            {
                if (Environment.TickCount64 >= deadline)
                {
                    return false;
                }
                await Task.Delay(5).ConfigureAwait(false);
                continue;
            }
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Volatile.Write(ref _clientInjection, done);
            var entered = Interlocked.CompareExchange(ref _clientGate, ClientInjecting, ClientIdle) == ClientIdle;
            if (!entered)
            {
                done.TrySetResult(); // nobody can be waiting on it, but never leave a waiter a task that does not end
                Volatile.Write(ref _clientInjector, 0);
            }
            else
            {
                try
                {
                    if (_fromBackend.AtFrameBoundary && !_clientClosedByGateway)
                    {
                        await client.WriteAsync(frame).ConfigureAwait(false);
                        if (thenStopForwarding)
                        {
                            // A Close is the last frame the client may get (RFC 6455 §5.5.1).
                            _clientClosedByGateway = true;
                        }
                        return true;
                    }
                }
                finally
                {
                    Volatile.Write(ref _clientGate, ClientIdle);
                    done.TrySetResult();
                    Volatile.Write(ref _clientInjector, 0);
                }
            }
            if (Environment.TickCount64 >= deadline)
            {
                return false;
            }
            await Task.Delay(5).ConfigureAwait(false);
        }
        return false;
    }

    /// <summary>Writes a frame of the gateway's own to the backend while YARP is parked reading the client, at a frame boundary.</summary>
    private async Task<bool> TryWriteToBackendAsync(ReadOnlyMemory<byte> frame, int waitMs)
    {
        var deadline = Environment.TickCount64 + waitMs;
        while (_backend is { } backend && Volatile.Read(ref _disposed) == 0)
        {
            if (Interlocked.CompareExchange(ref _backendInjector, 1, 0) != 0)
            {
                if (Environment.TickCount64 >= deadline)
                {
                    return false;
                }
                await Task.Delay(5).ConfigureAwait(false);
                continue;
            }
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            Volatile.Write(ref _backendInjection, done);
            var entered = Interlocked.CompareExchange(ref _backendGate, BackendInjecting, BackendYarpParked) == BackendYarpParked;
            if (!entered)
            {
                done.TrySetResult();
                Volatile.Write(ref _backendInjector, 0);
            }
            else
            {
                try
                {
                    if (_fromClient.AtFrameBoundary)
                    {
                        await backend.WriteAsync(frame).ConfigureAwait(false);
                        return true;
                    }
                }
                finally
                {
                    Volatile.Write(ref _backendGate, BackendYarpParked);
                    done.TrySetResult();
                    Volatile.Write(ref _backendInjector, 0);
                }
            }
            if (Environment.TickCount64 >= deadline)
            {
                return false;
            }
            await Task.Delay(5).ConfigureAwait(false);
        }
        return false;
    }

    // ---- Stream plumbing ----

    public override bool CanRead => true;

    public override bool CanWrite => true;

    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override int Read(byte[] buffer, int offset, int count) =>
        ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Write(byte[] buffer, int offset, int count) =>
        WriteAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Flush() => _client?.Flush();

    public override Task FlushAsync(CancellationToken cancellationToken) => _client?.FlushAsync(cancellationToken) ?? Task.CompletedTask;

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            Complete();
            _client?.Dispose();
        }
        base.Dispose(disposing);
    }

    /// <summary>Ends the tunnel's bookkeeping (idempotent): leaves the sweep and reports what it relayed.</summary>
    internal void Complete()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }
        if (_slot >= 0)
        {
            _sweeper.Unregister(_slot, this);
            // Without a Close frame either way the connection ended abnormally (1006, RFC 6455 §7.1.5).
            var closedBy = _closedBy ?? (_clientEnded ? RelayMetrics.ClosedBy.Client : RelayMetrics.ClosedBy.Backend);
            var code = _closedBy is null ? (ushort)1006 : _closeCode;
            _metrics.Closed(_tags, _route, _cluster, closedBy, code, Stopwatch.GetElapsedTime(_openedTimestamp),
                _fromClient.Messages, _fromClient.PayloadBytes, _fromBackend.Messages, _fromBackend.PayloadBytes);
        }
    }

    /// <summary>One side's keepalive state: the ping in flight and when it left.</summary>
    private struct PingState
    {
        public bool Outstanding;
        public ulong Payload;
        public long SentAtMs;
        public long SentTimestamp;
        public int InFlight;
    }
}
