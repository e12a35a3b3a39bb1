using System.Net.WebSockets;

namespace ChatBackend.Sockets;

internal enum ReceivedKind
{
    Text,
    Binary,
    Close,
    TooBig,
}

/// <summary>Outcome of reading one whole message. For Text/Binary the payload is in the caller's buffer.</summary>
internal readonly record struct ReceivedMessage(ReceivedKind Kind, WebSocketCloseStatus? CloseStatus = null, string? CloseDescription = null);

/// <summary>Reassembles fragmented WebSocket messages with a hard size limit.</summary>
internal static class MessageReader
{
    public static async Task<ReceivedMessage> ReadAsync(WebSocket socket, MessageBuffer buffer, int maxBytes, CancellationToken cancellationToken)
    {
        buffer.Reset();
        // Used once the buffer is full: a message of exactly maxBytes may still end with an empty final
        // frame, so the limit is only exceeded if a further byte actually arrives.
        byte[]? probe = null;
        while (true)
        {
            var atLimit = buffer.Length >= maxBytes;
            Memory<byte> target = atLimit ? (probe ??= new byte[1]) : buffer.GetFreeMemory(maxBytes);
            var result = await socket.ReceiveAsync(target, cancellationToken).ConfigureAwait(false);

            if (result.MessageType == WebSocketMessageType.Close)
            {
                return new ReceivedMessage(ReceivedKind.Close, socket.CloseStatus, socket.CloseStatusDescription);
            }

            if (atLimit)
            {
                if (result.Count > 0)
                {
                    return new ReceivedMessage(ReceivedKind.TooBig);
                }
            }
            else
            {
                buffer.Advance(result.Count);
            }

            if (result.EndOfMessage)
            {
                return new ReceivedMessage(result.MessageType == WebSocketMessageType.Text ? ReceivedKind.Text : ReceivedKind.Binary);
            }
        }
    }

    /// <summary>
    /// After the backend has sent a Close, the peer may still have data in flight; discard it until the
    /// peer's Close arrives so the handshake completes cleanly instead of the TCP connection being reset.
    /// </summary>
    public static async Task DrainUntilCloseAsync(WebSocket socket, CancellationToken cancellationToken)
    {
        var scratch = new byte[4096];
        while (socket.State is WebSocketState.Open or WebSocketState.CloseSent)
        {
            var result = await socket.ReceiveAsync(scratch.AsMemory(), cancellationToken).ConfigureAwait(false);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                return;
            }
        }
    }
}
