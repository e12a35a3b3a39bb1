using System.Buffers.Binary;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Text;

namespace Gateway.Tests.Listeners;

/// <summary>
/// The least of an HTTP/2 client (RFC 9113) over TLS with ALPN h2, enough to open extended-CONNECT WebSocket streams
/// (RFC 8441) and reset them at once, as a rapid-reset attacker does (CVE-2023-44487). Headers are HPACK literals
/// without indexing and without Huffman (RFC 7541 section 6.2.2), so no decoder state is shared; the server's frames
/// are read and dropped, except SETTINGS and PING, which are acknowledged, and GOAWAY, which is recorded.
/// </summary>
public sealed class RawHttp2Client : IAsyncDisposable
{
    private static readonly byte[] Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.ToArray();
    private const byte Headers = 0x1, RstStream = 0x3, Settings = 0x4, Ping = 0x6, GoAway = 0x7;
    private const byte EndHeaders = 0x4, Ack = 0x1;

    private readonly TcpClient _tcp;
    private readonly SslStream _tls;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly Task _reader;
    private readonly TaskCompletionSource _closed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Dictionary<int, TaskCompletionSource<int>> _responses = [];
    private int _nextStream = 1;
    private TaskCompletionSource? _pingAck;

    private RawHttp2Client(TcpClient tcp, SslStream tls)
    {
        _tcp = tcp;
        _tls = tls;
        _reader = Task.Run(ReadLoopAsync);
    }

    /// <summary>The error code of the server's GOAWAY, if one came.</summary>
    public int? GoAwayError { get; private set; }

    /// <summary>Completes when the server has closed the connection (or it failed).</summary>
    public Task Closed => _closed.Task;

    public static async Task<RawHttp2Client> ConnectAsync(Uri https, RemoteCertificateValidationCallback validate, CancellationToken cancellationToken)
    {
        var tcp = new TcpClient();
        await tcp.ConnectAsync(https.Host, https.Port, cancellationToken);
        tcp.NoDelay = true;
        var tls = new SslStream(tcp.GetStream(), leaveInnerStreamOpen: false, validate);
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "localhost",
            ApplicationProtocols = [SslApplicationProtocol.Http2],
            EnabledSslProtocols = SslProtocols.Tls12 | SslProtocols.Tls13,
        }, cancellationToken);
        if (tls.NegotiatedApplicationProtocol != SslApplicationProtocol.Http2)
        {
            throw new InvalidOperationException($"ALPN chose {tls.NegotiatedApplicationProtocol}, not h2");
        }
        await tls.WriteAsync(Preface, cancellationToken);
        await tls.WriteAsync(Frame(Settings, 0, 0, []), cancellationToken);
        await tls.FlushAsync(cancellationToken);
        return new RawHttp2Client(tcp, tls);
    }

    /// <summary>Opens an extended CONNECT for a WebSocket on <paramref name="path"/> and returns its stream id.</summary>
    public async Task<int> OpenWebSocketAsync(string authority, string path, string origin, bool resetAtOnce, CancellationToken cancellationToken)
    {
        await _writeLock.WaitAsync(cancellationToken);
        try
        {
            var id = _nextStream;
            _nextStream += 2;
            if (!resetAtOnce)
            {
                lock (_responses)
                {
                    _responses[id] = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
                }
            }
            var block = new MemoryStream();
            Literal(block, ":method", "CONNECT");
            Literal(block, ":protocol", "websocket");
            Literal(block, ":scheme", "https");
            Literal(block, ":authority", authority);
            Literal(block, ":path", path);
            Literal(block, "sec-websocket-version", "13");
            Literal(block, "origin", origin);
            var headers = Frame(Headers, EndHeaders, id, block.ToArray());
            // HEADERS and RST_STREAM(CANCEL) in one write: the stream is gone before the server can answer.
            var bytes = resetAtOnce ? [.. headers, .. Frame(RstStream, 0, id, Code(0x8))] : headers;
            await _tls.WriteAsync(bytes, cancellationToken);
            await _tls.FlushAsync(cancellationToken);
            return id;
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>The :status of the response on stream <paramref name="id"/> (opened without resetting it).</summary>
    public Task<int> StatusAsync(int id)
    {
        lock (_responses)
        {
            return _responses[id].Task;
        }
    }

    /// <summary>
    /// A PING, answered once the server has read everything sent before it: paces an attacker to the server's own
    /// speed, so the streams reach the application rather than overflowing Kestrel's output queue first.
    /// </summary>
    public async Task PingAsync(CancellationToken cancellationToken)
    {
        var ack = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Volatile.Write(ref _pingAck, ack);
        await WriteAsync(Frame(Ping, 0, 0, new byte[8]), cancellationToken);
        await Task.WhenAny(ack.Task, Closed).WaitAsync(cancellationToken);
    }

    /// <summary>RST_STREAM(CANCEL) for an open stream.</summary>
    public Task ResetAsync(int id, CancellationToken cancellationToken) => WriteAsync(Frame(RstStream, 0, id, Code(0x8)), cancellationToken);

    private async Task WriteAsync(byte[] bytes, CancellationToken cancellationToken)
    {
        await _writeLock.WaitAsync(cancellationToken);
        try
        {
            await _tls.WriteAsync(bytes, cancellationToken);
            await _tls.FlushAsync(cancellationToken);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    private async Task ReadLoopAsync()
    {
        var head = new byte[9];
        try
        {
            while (true)
            {
                await _tls.ReadExactlyAsync(head);
                var length = (head[0] << 16) | (head[1] << 8) | head[2];
                var type = head[3];
                var flags = head[4];
                var stream = BinaryPrimitives.ReadInt32BigEndian(head.AsSpan(5)) & 0x7fffffff;
                var payload = new byte[length];
                await _tls.ReadExactlyAsync(payload);
                if (type == Settings && (flags & Ack) == 0)
                {
                    await WriteAsync(Frame(Settings, Ack, 0, []), CancellationToken.None);
                }
                else if (type == Ping && (flags & Ack) == 0)
                {
                    await WriteAsync(Frame(Ping, Ack, 0, payload), CancellationToken.None);
                }
                else if (type == Ping)
                {
                    Volatile.Read(ref _pingAck)?.TrySetResult();
                }
                else if (type == GoAway)
                {
                    GoAwayError = BinaryPrimitives.ReadInt32BigEndian(payload.AsSpan(4));
                }
                else if (type == Headers)
                {
                    TaskCompletionSource<int>? response;
                    lock (_responses)
                    {
                        _responses.TryGetValue(stream, out response);
                    }
                    // Kestrel's first header of a response is :status, encoded as an indexed field (RFC 7541 Appendix A)
                    // for the common codes; 200 is index 8.
                    response?.TrySetResult(payload.Length > 0 && payload[0] == 0x88 ? 200 : -1);
                }
            }
        }
        catch (Exception ex) when (ex is IOException or EndOfStreamException or ObjectDisposedException or SocketException or InvalidOperationException)
        {
        }
        finally
        {
            _closed.TrySetResult();
        }
    }

    private static byte[] Code(int code)
    {
        var bytes = new byte[4];
        BinaryPrimitives.WriteInt32BigEndian(bytes, code);
        return bytes;
    }

    private static byte[] Frame(byte type, byte flags, int stream, byte[] payload)
    {
        var frame = new byte[9 + payload.Length];
        frame[0] = (byte)(payload.Length >> 16);
        frame[1] = (byte)(payload.Length >> 8);
        frame[2] = (byte)payload.Length;
        frame[3] = type;
        frame[4] = flags;
        BinaryPrimitives.WriteInt32BigEndian(frame.AsSpan(5), stream);
        payload.CopyTo(frame, 9);
        return frame;
    }

    /// <summary>RFC 7541 section 6.2.2, new name: 0x00, then name and value as plain strings (lengths under 127).</summary>
    private static void Literal(MemoryStream block, string name, string value)
    {
        block.WriteByte(0x00);
        block.WriteByte((byte)name.Length);
        block.Write(Encoding.ASCII.GetBytes(name));
        block.WriteByte((byte)value.Length);
        block.Write(Encoding.ASCII.GetBytes(value));
    }

    public async ValueTask DisposeAsync()
    {
        _tcp.Dispose();
        await _tls.DisposeAsync();
        await _reader.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _writeLock.Dispose();
    }
}
