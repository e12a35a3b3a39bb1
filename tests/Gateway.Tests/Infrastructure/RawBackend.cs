using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Gateway.Tests.Infrastructure;

/// <summary>
/// A WebSocket backend on a bare socket that records every frame it receives. It echoes data frames back
/// unmasked, answers pings while <see cref="AnswerPings"/> is set, answers a Close with a Close and ends.
/// Tests use it to see exactly what the gateway forwards, and to play a backend that goes silent.
/// </summary>
public sealed class RawBackend : IAsyncDisposable
{
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<TcpClient> _connections = new();
    private readonly List<Connection> _served = new();
    private readonly ConcurrentQueue<IPEndPoint> _peers = new();
    private readonly Task _accepting;

    /// <param name="port">0 for a free port; a port given is that of a backend the test stopped, started again.</param>
    public RawBackend(int port = 0)
    {
        _listener = new TcpListener(IPAddress.Loopback, port);
        _listener.Start();
        Address = new Uri($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}/");
        _accepting = AcceptLoopAsync();
    }

    public Uri Address { get; }

    /// <summary>Every frame received, in order, over all connections.</summary>
    public ConcurrentQueue<RawFrame> Received { get; } = new();

    public volatile bool AnswerPings = true;

    /// <summary>When false the backend neither echoes nor answers anything: a backend that hangs.</summary>
    public volatile bool Responsive = true;

    public TaskCompletionSource<RawFrame> CloseReceived { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public int Handshakes;

    /// <summary>The head of every handshake request received (request line and headers), in order.</summary>
    public ConcurrentQueue<string> Heads { get; } = new();

    /// <summary>Where every accepted connection came from (the gateway's source address and port), in order.</summary>
    public IReadOnlyCollection<IPEndPoint> Peers => _peers;

    /// <summary>What the backend's 101 says in <c>Sec-WebSocket-Extensions</c> (null: no header).</summary>
    public string? Extensions { get; set; }

    /// <summary>When set, the 101 proves a key other than the one sent (RFC 6455 section 4.1: the client must fail it).</summary>
    public volatile bool WrongAccept;

    /// <summary>The upgraded connections, in the order their handshakes arrived.</summary>
    public int Connections
    {
        get
        {
            lock (_served)
            {
                return _served.Count;
            }
        }
    }

    /// <summary>Writes raw bytes to one connection (frames of the test's own making, garbage, half a frame).</summary>
    public Task SendRawAsync(int connection, byte[] bytes) => Served(connection).WriteAsync(bytes, _stop.Token);

    /// <summary>Ends one connection with a TCP reset, as a killed process's kernel does.</summary>
    public void Reset(int connection)
    {
        var socket = Served(connection).Client.Client;
        socket.LingerState = new LingerOption(true, 0);
        socket.Close();
    }

    /// <summary>Ends one connection with a FIN and no Close frame.</summary>
    public void HangUp(int connection) => Served(connection).Client.Client.Shutdown(SocketShutdown.Both);

    private Connection Served(int index)
    {
        lock (_served)
        {
            return _served[index];
        }
    }

    /// <summary>One upgraded connection; writes are serialised so the flood and the echo never interleave inside a frame.</summary>
    private sealed class Connection(TcpClient client, Stream stream)
    {
        private readonly SemaphoreSlim _writes = new(1, 1);

        public TcpClient Client { get; } = client;

        public async Task WriteAsync(byte[] bytes, CancellationToken cancellationToken)
        {
            await _writes.WaitAsync(cancellationToken);
            try
            {
                await stream.WriteAsync(bytes, cancellationToken);
            }
            finally
            {
                _writes.Release();
            }
        }
    }

    /// <summary>A text message "flood:N" makes the backend send N bytes in 16 KiB binary frames, while it goes on reading.</summary>
    private async Task FloodAsync(Connection connection, int bytes)
    {
        var frame = RawFrames.Encode(RawFrame.Binary, new byte[16 * 1024], mask: false);
        try
        {
            for (var sent = 0; sent < bytes && !_stop.IsCancellationRequested; sent += 16 * 1024)
            {
                await connection.WriteAsync(frame, _stop.Token);
            }
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException)
        {
        }
    }

    private Task AcceptLoopAsync() => AcceptLoop.RunAsync(_listener, _stop.Token, client =>
    {
        lock (_connections)
        {
            _connections.Add(client);
        }
        _peers.Enqueue((IPEndPoint)client.Client.RemoteEndPoint!);
        _ = ServeAsync(client);
    });

    private async Task ServeAsync(TcpClient client)
    {
        client.NoDelay = true;
        var stream = client.GetStream();
        try
        {
            var head = await RawFrames.ReadHeadAsync(stream, _stop.Token);
            Heads.Enqueue(head);
            var key = head.Split("\r\n").First(l => l.StartsWith("Sec-WebSocket-Key:", StringComparison.OrdinalIgnoreCase))[18..].Trim();
            Interlocked.Increment(ref Handshakes);
            var extensions = Extensions is { } agreed ? $"Sec-WebSocket-Extensions: {agreed}\r\n" : string.Empty;
            var response = $"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {RawFrames.AcceptFor(WrongAccept ? "dGhlIHNhbXBsZSBub25jZQ==" : key)}\r\n{extensions}\r\n";
            var connection = new Connection(client, stream);
            lock (_served)
            {
                _served.Add(connection);
            }
            await connection.WriteAsync(Encoding.ASCII.GetBytes(response), _stop.Token);
            while (true)
            {
                var frame = await RawFrames.ReadAsync(stream, expectMasked: true, _stop.Token);
                Received.Enqueue(frame);
                if (!Responsive)
                {
                    continue;
                }
                switch (frame.Opcode)
                {
                    case RawFrame.Ping when AnswerPings:
                        await connection.WriteAsync(RawFrames.Encode(RawFrame.Pong, frame.Payload, mask: false), _stop.Token);
                        break;
                    case RawFrame.Close:
                        CloseReceived.TrySetResult(frame);
                        await connection.WriteAsync(RawFrames.Encode(RawFrame.Close, frame.Payload.AsSpan(0, Math.Min(2, frame.Payload.Length)), mask: false), _stop.Token);
                        client.Client.Shutdown(SocketShutdown.Both);
                        return;
                    case RawFrame.Text when frame.Payload.AsSpan().StartsWith("flood:"u8):
                        _ = FloodAsync(connection, int.Parse(Encoding.ASCII.GetString(frame.Payload, 6, frame.Payload.Length - 6)));
                        break;
                    case RawFrame.Text or RawFrame.Binary or RawFrame.Continuation:
                        await connection.WriteAsync(RawFrames.Encode(frame.Opcode, frame.Payload, frame.Fin, mask: false, rsv: frame.Rsv), _stop.Token);
                        break;
                }
            }
        }
        catch (Exception) when (_stop.IsCancellationRequested)
        {
        }
        catch (EndOfStreamException)
        {
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or SocketException)
        {
            // Reset or hung up by the test.
        }
        finally
        {
            client.Dispose();
        }
    }

    public int Count(byte opcode) => Received.Count(f => f.Opcode == opcode);

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        lock (_connections)
        {
            foreach (var connection in _connections)
            {
                connection.Dispose();
            }
        }
        await _accepting;
    }
}
