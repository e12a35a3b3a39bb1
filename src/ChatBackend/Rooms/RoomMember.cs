using System.Net.WebSockets;
using System.Threading.Channels;
using ChatBackend.Sockets;

namespace ChatBackend.Rooms;

/// <summary>
/// One socket in a room. Broadcasters never touch the socket: they drop messages into a bounded queue and
/// a single writer loop sends them, so a slow reader only ever delays itself. Because that writer loop is
/// the only code that sends, closes are requested through it as well.
/// </summary>
internal sealed class RoomMember : IClosableConnection
{
    private readonly WebSocket _socket;
    private readonly Channel<ReadOnlyMemory<byte>> _outgoing;
    private readonly CancellationTokenSource _lifetime;
    private readonly TimeSpan _closeTimeout;
    private CloseRequest? _closeRequest;

    /// <param name="lifetime">Cancelled to abort the socket; the member arms it with a timeout once closing starts.</param>
    public RoomMember(WebSocket socket, int queueCapacity, TimeSpan closeTimeout, CancellationTokenSource lifetime)
    {
        _socket = socket;
        _closeTimeout = closeTimeout;
        _lifetime = lifetime;
        _outgoing = Channel.CreateBounded<ReadOnlyMemory<byte>>(new BoundedChannelOptions(queueCapacity)
        {
            SingleReader = true,
            // Writers use TryWrite only; Wait mode makes TryWrite report "full" instead of silently dropping.
            FullMode = BoundedChannelFullMode.Wait,
        });
    }

    public bool IsClosing => Volatile.Read(ref _closeRequest) is not null;

    /// <summary>Queues a text message without blocking; a member that is already closing just drops it.</summary>
    /// <returns>True if this message overflowed the queue and the member is now being closed as too slow.</returns>
    public bool EnqueueOrOverflow(ReadOnlyMemory<byte> utf8Text)
    {
        if (_outgoing.Writer.TryWrite(utf8Text))
        {
            return false;
        }

        // TryWrite also fails once the channel is completed; RequestClose reports whether we were first.
        return RequestClose(WebSocketCloseStatus.PolicyViolation, "too slow");
    }

    /// <summary>
    /// Asks the writer loop to send a Close. Pending messages are dropped: a closing peer has no use for
    /// them. The first request wins. From here on the whole connection has <c>closeTimeout</c> to finish.
    /// </summary>
    public bool RequestClose(WebSocketCloseStatus status, string? description)
    {
        if (Interlocked.CompareExchange(ref _closeRequest, new CloseRequest(status, description), null) is not null)
        {
            return false;
        }

        _outgoing.Writer.TryComplete();
        try
        {
            // A peer that stopped reading can leave a send pending forever; cancelling aborts the socket.
            _lifetime.CancelAfter(_closeTimeout);
        }
        catch (ObjectDisposedException)
        {
            // The connection already finished.
        }

        return true;
    }

    void IClosableConnection.BeginClose(WebSocketCloseStatus status, string description) => RequestClose(status, description);

    void IClosableConnection.Abort() => _socket.Abort();

    /// <summary>Sends queued messages until a close is requested, then sends the Close frame.</summary>
    public async Task RunWriterAsync()
    {
        var token = _lifetime.Token;
        var reader = _outgoing.Reader;
        try
        {
            while (await reader.WaitToReadAsync(token).ConfigureAwait(false))
            {
                while (!IsClosing && reader.TryRead(out var message))
                {
                    await _socket.SendAsync(message, WebSocketMessageType.Text, endOfMessage: true, token).ConfigureAwait(false);
                }

                if (IsClosing)
                {
                    break;
                }
            }

            // The channel is only completed by RequestClose, so a close request exists here.
            var close = Volatile.Read(ref _closeRequest);
            if (close is not null && _socket.State is WebSocketState.Open or WebSocketState.CloseReceived)
            {
                // A Close without a status code (1005 "Empty") must not carry a description either.
                var description = close.Status == WebSocketCloseStatus.Empty ? null : close.Description;
                await _socket.CloseOutputAsync(close.Status, description, token).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or WebSocketException or ObjectDisposedException)
        {
            // The socket was aborted (peer gone or close timeout); there is nobody left to tell.
        }
    }

    private sealed record CloseRequest(WebSocketCloseStatus Status, string? Description);
}
