using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace LoadGen;

/// <summary>Where to connect: host/port, ws or wss, request path, and loopback source addresses to spread over.</summary>
public sealed class Target
{
    public required IPAddress Address { get; init; }
    public required int Port { get; init; }
    public bool Tls { get; init; }
    public string Path { get; init; } = "/echo";
    public IPAddress[] Sources { get; init; } = [];

    /// <summary>
    /// The server's certificate (or its CA), trusted as the only root: the client then validates the chain against it
    /// alone, instead of against the system store (which costs the client more CPU per handshake than the server's
    /// whole handshake). Null: accept any certificate (the chain is still built against the system store).
    /// </summary>
    public System.Security.Cryptography.X509Certificates.X509Certificate2? TrustedRoot { get; init; }

    /// <summary>Allow TLS session resumption (off by default: every connection is a full handshake).</summary>
    public bool AllowTlsResume { get; init; }

    private int _nextSource;
    private X509ChainPolicy? _chainPolicy;

    public SslClientAuthenticationOptions ClientOptions()
    {
        if (TrustedRoot is not null && _chainPolicy is null)
        {
            var policy = new X509ChainPolicy
            {
                TrustMode = X509ChainTrustMode.CustomRootTrust,
                RevocationMode = X509RevocationMode.NoCheck,
                DisableCertificateDownloads = true,
            };
            policy.CustomTrustStore.Add(TrustedRoot);
            _chainPolicy = policy;
        }
        return new SslClientAuthenticationOptions
        {
            TargetHost = "localhost",
            EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
            ApplicationProtocols = [SslApplicationProtocol.Http11],
            AllowTlsResume = AllowTlsResume,
            CertificateChainPolicy = _chainPolicy,
            RemoteCertificateValidationCallback = TrustedRoot is null ? static (_, _, _, _) => true : null,
        };
    }

    public IPAddress? NextSource() =>
        Sources.Length == 0 ? null : Sources[(int)((uint)Interlocked.Increment(ref _nextSource) % (uint)Sources.Length)];
}

/// <summary>
/// One client WebSocket over a raw socket (optionally SslStream): RFC 6455 client frames (masked), a receive
/// buffer parsed in place, no per-message allocation.
/// </summary>
public sealed class WsConnection : IDisposable
{
    // Linux IP_BIND_ADDRESS_NO_PORT: bind a source address now, choose the port at connect() (per destination).
    private const int SolIp = 0;
    private const int IpBindAddressNoPort = 24;

    private readonly Socket _socket;
    private SslStream? _ssl;
    private byte[] _buffer;
    private int _start;
    private int _end;
    private uint _maskState;
    private readonly SemaphoreSlim? _writeLock;

    public LatencyList Latencies;
    public long Received;
    public long PingsAnswered;

    private WsConnection(Socket socket, int bufferSize, bool lockWrites)
    {
        _socket = socket;
        _buffer = new byte[bufferSize];
        _maskState = (uint)Random.Shared.Next() | 1;
        _writeLock = lockWrites ? new SemaphoreSlim(1, 1) : null;
    }

    /// <summary>TCP connect, optional TLS (full handshake: no resumption), WebSocket handshake. Throws on failure.</summary>
    public static async Task<WsConnection> ConnectAsync(Target target, int bufferSize, bool lockWrites, CancellationToken ct)
    {
        var socket = new Socket(target.Address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        WsConnection? connection = null;
        try
        {
            if (target.NextSource() is { } source)
            {
                socket.SetRawSocketOption(SolIp, IpBindAddressNoPort, BitConverter.GetBytes(1));
                socket.Bind(new IPEndPoint(source, 0));
            }
            await socket.ConnectAsync(new IPEndPoint(target.Address, target.Port), ct);
            connection = new WsConnection(socket, bufferSize, lockWrites);
            if (target.Tls)
            {
                var ssl = new SslStream(new NetworkStream(socket, ownsSocket: false), leaveInnerStreamOpen: false);
                await ssl.AuthenticateAsClientAsync(target.ClientOptions(), ct);
                connection._ssl = ssl;
            }
            await connection.HandshakeAsync(target, ct);
            return connection;
        }
        catch
        {
            if (connection is not null)
            {
                connection.Dispose();
            }
            else
            {
                socket.Dispose();
            }
            throw;
        }
    }

    private async Task HandshakeAsync(Target target, CancellationToken ct)
    {
        var key = Convert.ToBase64String(BitConverter.GetBytes(Random.Shared.NextInt64()).Concat(BitConverter.GetBytes(Random.Shared.NextInt64())).ToArray());
        var request = Encoding.ASCII.GetBytes(
            $"GET {target.Path} HTTP/1.1\r\nHost: localhost:{target.Port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
            $"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n");
        await SendRawAsync(request, ct);
        int headEnd;
        while ((headEnd = _buffer.AsSpan(0, _end).IndexOf("\r\n\r\n"u8)) < 0)
        {
            if (_end == _buffer.Length || !await FillAsync(ct))
            {
                throw new IOException("the server closed the connection during the WebSocket handshake");
            }
        }
        if (!_buffer.AsSpan(0, headEnd).StartsWith("HTTP/1.1 101"u8))
        {
            var line = Encoding.ASCII.GetString(_buffer, 0, Math.Min(headEnd, _buffer.AsSpan(0, headEnd).IndexOf("\r\n"u8) is var e and >= 0 ? e : headEnd));
            throw new IOException($"handshake refused: {line}");
        }
        _start = headEnd + 4;
    }

    public ValueTask SendRawAsync(ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        if (_ssl is not null)
        {
            return _ssl.WriteAsync(data, ct);
        }
        return SendSocketAsync(data, ct);
    }

    private async ValueTask SendSocketAsync(ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        while (data.Length > 0)
        {
            var n = await _socket.SendAsync(data, SocketFlags.None, ct);
            data = data[n..];
        }
    }

    /// <summary>Sends under the connection's write lock (when it has one: a sender and the reader's pongs share the socket).</summary>
    public async ValueTask SendLockedAsync(ReadOnlyMemory<byte> data, CancellationToken ct)
    {
        if (_writeLock is null)
        {
            await SendRawAsync(data, ct);
            return;
        }
        await _writeLock.WaitAsync(ct);
        try
        {
            await SendRawAsync(data, ct);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>Reads more bytes into the buffer (compacting first). False at end of stream.</summary>
    public async ValueTask<bool> FillAsync(CancellationToken ct)
    {
        if (_start == _end)
        {
            _start = _end = 0;
        }
        else if (_start > 0 && _end == _buffer.Length)
        {
            _buffer.AsSpan(_start, _end - _start).CopyTo(_buffer);
            _end -= _start;
            _start = 0;
        }
        if (_end == _buffer.Length)
        {
            Array.Resize(ref _buffer, _buffer.Length * 2);
        }
        var n = _ssl is not null
            ? await _ssl.ReadAsync(_buffer.AsMemory(_end), ct)
            : await _socket.ReceiveAsync(_buffer.AsMemory(_end), SocketFlags.None, ct);
        if (n == 0)
        {
            return false;
        }
        _end += n;
        return true;
    }

    /// <summary>Parses one complete server frame (unmasked) from the buffer; the payload stays valid until the next Fill.</summary>
    public bool TryReadFrame(out byte opcode, out ReadOnlySpan<byte> payload)
    {
        opcode = 0;
        payload = default;
        var data = _buffer.AsSpan(_start, _end - _start);
        if (data.Length < 2)
        {
            return false;
        }
        opcode = (byte)(data[0] & 0x0F);
        long length = data[1] & 0x7F;
        var header = 2;
        if (length == 126)
        {
            if (data.Length < 4) return false;
            length = BinaryPrimitives.ReadUInt16BigEndian(data[2..]);
            header = 4;
        }
        else if (length == 127)
        {
            if (data.Length < 10) return false;
            length = (long)BinaryPrimitives.ReadUInt64BigEndian(data[2..]);
            header = 10;
        }
        if ((data[1] & 0x80) != 0)
        {
            throw new InvalidDataException("the server sent a masked frame");
        }
        if (data.Length < header + length)
        {
            return false;
        }
        payload = data.Slice(header, (int)length);
        _start += header + (int)length;
        return true;
    }

    /// <summary>Writes one masked client frame (FIN set) into dst; returns its length.</summary>
    public int WriteFrame(Span<byte> dst, byte opcode, ReadOnlySpan<byte> payload)
    {
        dst[0] = (byte)(0x80 | opcode);
        int header;
        if (payload.Length < 126)
        {
            dst[1] = (byte)(0x80 | payload.Length);
            header = 2;
        }
        else if (payload.Length <= ushort.MaxValue)
        {
            dst[1] = 0x80 | 126;
            BinaryPrimitives.WriteUInt16BigEndian(dst[2..], (ushort)payload.Length);
            header = 4;
        }
        else
        {
            dst[1] = 0x80 | 127;
            BinaryPrimitives.WriteUInt64BigEndian(dst[2..], (ulong)payload.Length);
            header = 10;
        }
        // xorshift32: a fresh mask per frame, cheap.
        var x = _maskState;
        x ^= x << 13; x ^= x >> 17; x ^= x << 5;
        _maskState = x;
        BinaryPrimitives.WriteUInt32LittleEndian(dst[header..], x);
        var mask = dst.Slice(header, 4);
        header += 4;
        var body = dst.Slice(header, payload.Length);
        for (var i = 0; i < payload.Length; i++)
        {
            body[i] = (byte)(payload[i] ^ mask[i & 3]);
        }
        return header + payload.Length;
    }

    /// <summary>A message payload of the given size whose first 8 bytes are the send timestamp.</summary>
    public static void StampPayload(Span<byte> payload, long timestamp)
    {
        BinaryPrimitives.WriteInt64LittleEndian(payload, timestamp);
    }

    public static long ReadStamp(ReadOnlySpan<byte> payload) =>
        payload.Length >= 8 ? BinaryPrimitives.ReadInt64LittleEndian(payload) : 0;

    public static int ToMicros(long elapsedTicks) => (int)Math.Min(int.MaxValue, elapsedTicks * 1_000_000 / Stopwatch.Frequency);

    /// <summary>Sends a close frame (when a reader task is running, it sees the server's close and the end of stream).</summary>
    public async Task SendCloseAsync(CancellationToken ct)
    {
        var frame = new byte[8];
        var length = WriteFrame(frame, 0x8, ReadOnlySpan<byte>.Empty);
        await SendLockedAsync(frame.AsMemory(0, length), ct);
    }

    /// <summary>
    /// Closing handshake: send a close frame, wait (bounded) for the server's close and its end of stream, so the
    /// server side closes TCP first and the TIME_WAIT lands there, not on the client's ephemeral ports.
    /// </summary>
    public async Task CloseAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            var frame = new byte[8];
            var length = WriteFrame(frame, 0x8, ReadOnlySpan<byte>.Empty);
            await SendLockedAsync(frame.AsMemory(0, length), cts.Token);
            while (await FillAsync(cts.Token))
            {
                _start = _end; // discard anything but the end of stream
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or SocketException or ObjectDisposedException)
        {
        }
        finally
        {
            Dispose();
        }
    }

    public void Dispose()
    {
        try
        {
            _ssl?.Dispose();
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException)
        {
        }
        _socket.Dispose();
        _writeLock?.Dispose();
    }
}

/// <summary>A growable list of latencies in microseconds, one per connection (no locking).</summary>
public struct LatencyList
{
    private int[]? _items;
    private int _count;

    public readonly int Count => _count;

    public void Add(int micros)
    {
        _items ??= new int[64];
        if (_count == _items.Length)
        {
            Array.Resize(ref _items, _items.Length * 2);
        }
        _items[_count++] = micros;
    }

    public readonly void CopyTo(List<int> all)
    {
        if (_items is not null)
        {
            all.AddRange(new ArraySegment<int>(_items, 0, _count));
        }
    }
}
