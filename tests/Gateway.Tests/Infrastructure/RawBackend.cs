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
    private readonly Task _accepting;

    public RawBackend()
    {
        _listener = new TcpListener(IPAddress.Loopback, 0);
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

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (Exception) when (_stop.IsCancellationRequested)
            {
                return;
            }
            lock (_connections)
            {
                _connections.Add(client);
            }
            _ = ServeAsync(client);
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        client.NoDelay = true;
        var stream = client.GetStream();
        try
        {
            var head = await RawFrames.ReadHeadAsync(stream, _stop.Token);
            var key = head.Split("\r\n").First(l => l.StartsWith("Sec-WebSocket-Key:", StringComparison.OrdinalIgnoreCase))[18..].Trim();
            Interlocked.Increment(ref Handshakes);
            var response = $"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {RawFrames.AcceptFor(key)}\r\n\r\n";
            await stream.WriteAsync(Encoding.ASCII.GetBytes(response), _stop.Token);
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
                        await stream.WriteAsync(RawFrames.Encode(RawFrame.Pong, frame.Payload, mask: false), _stop.Token);
                        break;
                    case RawFrame.Close:
                        CloseReceived.TrySetResult(frame);
                        await stream.WriteAsync(RawFrames.Encode(RawFrame.Close, frame.Payload.AsSpan(0, Math.Min(2, frame.Payload.Length)), mask: false), _stop.Token);
                        client.Client.Shutdown(SocketShutdown.Both);
                        return;
                    case RawFrame.Text or RawFrame.Binary or RawFrame.Continuation:
                        await stream.WriteAsync(RawFrames.Encode(frame.Opcode, frame.Payload, frame.Fin, mask: false, rsv: frame.Rsv), _stop.Token);
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
        catch (IOException)
        {
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
