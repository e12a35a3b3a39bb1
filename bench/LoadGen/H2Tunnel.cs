using System.Diagnostics;
using System.Net.WebSockets;

namespace LoadGen;

/// <summary>
/// One WebSocket over an HTTP/2 stream (RFC 8441), through .NET's ClientWebSocket: its receive loop keeps one
/// receive pending, which is also what makes ClientWebSocket answer the server's pings with pongs while idle.
/// </summary>
public sealed class H2Tunnel
{
    private readonly byte[] _receive;
    private Task _reader = Task.CompletedTask;

    public ClientWebSocket Socket { get; }
    public LatencyList Latencies;
    public long Received;
    public bool Closed;
    public bool Failed;

    /// <summary>Echoes of messages stamped before this are not counted.</summary>
    public long From = long.MaxValue;

    public H2Tunnel(ClientWebSocket socket, int size)
    {
        Socket = socket;
        _receive = new byte[Math.Max(16, size)];
    }

    public void StartReading(CancellationToken ct) => _reader = Task.Run(() => ReadLoopAsync(ct), CancellationToken.None);

    private async Task ReadLoopAsync(CancellationToken ct)
    {
        try
        {
            var atStart = true;
            long stamp = 0;
            while (true)
            {
                var result = await Socket.ReceiveAsync(_receive.AsMemory(), ct);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    Closed = true;
                    return;
                }
                if (atStart)
                {
                    stamp = WsConnection.ReadStamp(_receive.AsSpan(0, result.Count)); // 0 (never counted) under 8 bytes
                }
                atStart = result.EndOfMessage;
                if (result.EndOfMessage && stamp >= From)
                {
                    Latencies.Add(WsConnection.ToMicros(Stopwatch.GetTimestamp() - stamp));
                    Received++;
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or WebSocketException or IOException or ObjectDisposedException)
        {
            if (!Closed)
            {
                Failed = true;
            }
        }
    }

    public async Task SendStampedAsync(byte[] payload, CancellationToken ct)
    {
        WsConnection.StampPayload(payload, Stopwatch.GetTimestamp());
        try
        {
            await Socket.SendAsync(payload, WebSocketMessageType.Binary, endOfMessage: true, ct);
        }
        catch (Exception ex) when (ex is WebSocketException or IOException or ObjectDisposedException)
        {
            Failed = true;
        }
    }

    /// <summary>Close frame out, then (bounded) the server's close seen by the reader; then the stream is released.</summary>
    public async Task CloseAsync(TimeSpan timeout)
    {
        using var cts = new CancellationTokenSource(timeout);
        try
        {
            if (!Failed && Socket.State == WebSocketState.Open)
            {
                await Socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, cts.Token);
                await _reader.WaitAsync(cts.Token);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or TimeoutException or WebSocketException or IOException or ObjectDisposedException)
        {
        }
        finally
        {
            Socket.Dispose();
        }
    }
}
