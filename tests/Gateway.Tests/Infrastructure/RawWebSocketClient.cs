using System.Net.Sockets;
using System.Text;
using System.Threading.Channels;

namespace Gateway.Tests.Infrastructure;

/// <summary>
/// A WebSocket client on a bare TCP socket: it sends exactly the bytes a test asks for (one byte per write if
/// asked), and a background reader checks every frame that arrives, answers pings like a browser (unless told
/// not to) and queues the rest. Writes are serialised per frame, so a pong never lands inside a frame.
/// </summary>
public sealed class RawWebSocketClient : IAsyncDisposable
{
    private readonly TcpClient _tcp;
    private readonly SemaphoreSlim _writeLock = new(1, 1);
    private readonly Channel<RawFrame> _frames = Channel.CreateUnbounded<RawFrame>();
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _reader;
    private int _pings;

    private RawWebSocketClient(TcpClient tcp, Stream stream, string response)
    {
        _tcp = tcp;
        Stream = stream;
        Response = response;
        _reader = ReadLoopAsync();
    }

    public Stream Stream { get; }

    /// <summary>The handshake response head.</summary>
    public string Response { get; }

    /// <summary>Pings received (answered while <see cref="AnswerPings"/> is set).</summary>
    public int PingsSeen => Volatile.Read(ref _pings);

    public volatile bool AnswerPings = true;

    /// <summary>Set when the reader found a malformed or out-of-step frame.</summary>
    public Exception? ReadError { get; private set; }

    public static async Task<RawWebSocketClient> ConnectAsync(Uri baseUri, string path, params string[] extraHeaders)
    {
        var tcp = new TcpClient { NoDelay = true };
        await tcp.ConnectAsync(baseUri.Host, baseUri.Port);
        var stream = tcp.GetStream();
        var key = RawFrames.NewKey();
        var request = new StringBuilder()
            .Append($"GET {path} HTTP/1.1\r\nHost: {baseUri.Host}:{baseUri.Port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
            .Append($"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n");
        foreach (var header in extraHeaders)
        {
            request.Append(header).Append("\r\n");
        }
        request.Append("\r\n");
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await stream.WriteAsync(Encoding.ASCII.GetBytes(request.ToString()), timeout.Token);
        var response = await RawFrames.ReadHeadAsync(stream, timeout.Token);
        if (!response.StartsWith("HTTP/1.1 101", StringComparison.Ordinal))
        {
            tcp.Dispose();
            throw new InvalidOperationException($"handshake refused: {response}");
        }
        Assert.Contains($"Sec-WebSocket-Accept: {RawFrames.AcceptFor(key)}", response, StringComparison.OrdinalIgnoreCase);
        return new RawWebSocketClient(tcp, stream, response);
    }

    /// <summary>Sends one frame's bytes, <paramref name="chunk"/> bytes per TCP write.</summary>
    public async Task SendAsync(byte[] frameBytes, int chunk = int.MaxValue)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        await _writeLock.WaitAsync(timeout.Token);
        try
        {
            await RawFrames.WriteChunkedAsync(Stream, frameBytes, Math.Max(1, Math.Min(chunk, frameBytes.Length)), timeout.Token);
        }
        finally
        {
            _writeLock.Release();
        }
    }

    /// <summary>The next frame that is not a ping, or null when the connection ended.</summary>
    public async Task<RawFrame?> ReceiveAsync(TimeSpan? within = null)
    {
        using var timeout = new CancellationTokenSource(within ?? TimeSpan.FromSeconds(30));
        try
        {
            return await _frames.Reader.ReadAsync(timeout.Token);
        }
        catch (ChannelClosedException)
        {
            return null;
        }
    }

    /// <summary>Waits <paramref name="duration"/> and returns the non-ping frames that arrived meanwhile.</summary>
    public async Task<List<RawFrame>> IdleAsync(TimeSpan duration)
    {
        var frames = new List<RawFrame>();
        var until = DateTime.UtcNow + duration;
        while (DateTime.UtcNow < until)
        {
            using var wait = new CancellationTokenSource(until - DateTime.UtcNow);
            try
            {
                frames.Add(await _frames.Reader.ReadAsync(wait.Token));
            }
            catch (OperationCanceledException)
            {
                break;
            }
            catch (ChannelClosedException)
            {
                break;
            }
        }
        return frames;
    }

    /// <summary>Completes when the server has closed the TCP connection.</summary>
    public Task Ended => _reader;

    private async Task ReadLoopAsync()
    {
        try
        {
            while (true)
            {
                var frame = await RawFrames.ReadAsync(Stream, expectMasked: false, _stop.Token);
                if (frame.Opcode == RawFrame.Ping)
                {
                    Interlocked.Increment(ref _pings);
                    if (AnswerPings)
                    {
                        await SendAsync(RawFrames.Encode(RawFrame.Pong, frame.Payload));
                    }
                    continue;
                }
                await _frames.Writer.WriteAsync(frame);
            }
        }
        catch (Exception ex) when (ex is EndOfStreamException or IOException or OperationCanceledException or ObjectDisposedException)
        {
        }
        catch (Exception ex)
        {
            ReadError = ex;
        }
        finally
        {
            _frames.Writer.TryComplete();
        }
    }

    /// <summary>Ends the connection with a TCP reset and no Close frame, as a crashed client's kernel does.</summary>
    public void Reset()
    {
        _tcp.Client.LingerState = new LingerOption(true, 0);
        _tcp.Client.Close();
    }

    /// <summary>Ends the connection with a FIN and no Close frame.</summary>
    public void HangUp() => _tcp.Client.Shutdown(SocketShutdown.Send);

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _tcp.Dispose();
        await _reader;
        _writeLock.Dispose();
    }
}
