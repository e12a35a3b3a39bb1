using System.Net.WebSockets;
using ChatBackend.Sockets;

namespace ChatBackend.Echo;

/// <summary>
/// Send side of one /echo socket. Echo replies and a shutdown Close can come from different threads, and
/// a WebSocket allows only one send at a time, so all sends go through one lock here.
/// </summary>
internal sealed class EchoSession(WebSocket socket, TimeSpan closeTimeout, CancellationTokenSource lifetime) : IClosableConnection
{
    private readonly SemaphoreSlim _sendLock = new(1, 1);
    private int _closeStarted;

    public bool IsClosing => Volatile.Read(ref _closeStarted) != 0;

    /// <summary>Sends a whole message back, unless a close has started (then the reply is pointless and would throw).</summary>
    public async Task SendAsync(ReadOnlyMemory<byte> payload, WebSocketMessageType type)
    {
        var token = lifetime.Token;
        await _sendLock.WaitAsync(token).ConfigureAwait(false);
        try
        {
            if (!IsClosing && socket.State == WebSocketState.Open)
            {
                await socket.SendAsync(payload, type, endOfMessage: true, token).ConfigureAwait(false);
            }
        }
        finally
        {
            _sendLock.Release();
        }
    }

    /// <summary>Sends a Close once; later calls do nothing. The connection then has the close timeout to finish.</summary>
    public async Task CloseAsync(WebSocketCloseStatus status, string? description)
    {
        if (Interlocked.Exchange(ref _closeStarted, 1) != 0)
        {
            return;
        }

        try
        {
            // Bounds both this send and the receive loop waiting for the peer's Close; cancelling aborts the socket.
            lifetime.CancelAfter(closeTimeout);
        }
        catch (ObjectDisposedException)
        {
            return;
        }

        var token = lifetime.Token;
        try
        {
            await _sendLock.WaitAsync(token).ConfigureAwait(false);
            try
            {
                if (socket.State is WebSocketState.Open or WebSocketState.CloseReceived)
                {
                    var text = status == WebSocketCloseStatus.Empty ? null : description;
                    await socket.CloseOutputAsync(status, text, token).ConfigureAwait(false);
                }
            }
            finally
            {
                _sendLock.Release();
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or WebSocketException or ObjectDisposedException)
        {
            // Socket already gone; the receive loop notices on its own.
        }
    }

    void IClosableConnection.BeginClose(WebSocketCloseStatus status, string description) => _ = CloseAsync(status, description);

    void IClosableConnection.Abort() => socket.Abort();
}
