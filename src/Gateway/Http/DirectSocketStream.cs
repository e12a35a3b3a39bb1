using System.Net.Sockets;

namespace Gateway.Http;

/// <summary>
/// A relayed connection's socket as a stream whose writes go to the socket on the caller's own call: a send is first
/// tried without waiting (the socket is non-blocking), and only what the socket cannot take now goes the asynchronous
/// way. A tunnel's sends nearly always fit the socket's buffer, so each costs one <c>send</c> and no operation object:
/// the socket's cached asynchronous send (an <c>AwaitableSocketAsyncEventArgs</c> of about 300 bytes, kept for the
/// socket's life once used) is made only for a peer that stops reading. Reads stay asynchronous (zero-byte reads wait
/// without a buffer). Writes must not overlap, as on any stream: the relay writes one frame at a time per direction.
/// </summary>
/// <remarks>
/// Written by hand because <see cref="NetworkStream"/> always sends through the asynchronous operation, even when the
/// send completes at once, and rejects a non-blocking socket at construction (so the socket is made non-blocking
/// after it). The synchronous reads and writes of the base class are not used by the relay; they fail with
/// <see cref="SocketError.WouldBlock"/> rather than wait.
/// </remarks>
internal class DirectSocketStream : NetworkStream
{
    public DirectSocketStream(Socket socket, bool ownsSocket) : base(socket, ownsSocket)
    {
        socket.Blocking = false;
    }

    /// <summary>
    /// Sends what a non-blocking <paramref name="socket"/> takes now; returns the count (0 when it takes nothing), with
    /// <paramref name="error"/> set only for a failure. The socket reports a partial send as success with the count sent,
    /// and would-block only when it took nothing (dotnet/runtime SocketPal.Unix TryCompleteSendTo), so the caller's rest
    /// starts where the kernel stopped.
    /// </summary>
    internal static int SendNow(Socket socket, ReadOnlySpan<byte> data, out SocketError error)
    {
        var sent = socket.Send(data, SocketFlags.None, out error);
        if (error == SocketError.WouldBlock)
        {
            error = SocketError.Success;
            return 0;
        }
        return sent;
    }

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        // Disposed (NetworkStream then says it cannot write), cancelled or empty: the base class's checks and exceptions.
        if (!CanWrite || cancellationToken.IsCancellationRequested || buffer.IsEmpty)
        {
            return base.WriteAsync(buffer, cancellationToken);
        }
        int sent;
        SocketError error;
        try
        {
            sent = SendNow(Socket, buffer.Span, out error);
        }
        catch (ObjectDisposedException ex)
        {
            return ValueTask.FromException(ex);
        }
        if (error != SocketError.Success)
        {
            // As NetworkStream reports a failed send: an IOException around the socket's error.
            var failure = new SocketException((int)error);
            return ValueTask.FromException(new IOException($"Unable to write data to the transport connection: {failure.Message}.", failure));
        }
        // What the socket could not take now (a slow reader) waits for room.
        return sent == buffer.Length ? ValueTask.CompletedTask : base.WriteAsync(buffer[sent..], cancellationToken);
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
}
