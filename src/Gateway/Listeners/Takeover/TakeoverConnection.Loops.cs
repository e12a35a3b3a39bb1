using System.Buffers;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;

namespace Gateway.Listeners.Takeover;

// The two loops between the socket and the pipes, as Kestrel's socket transport runs them, with one difference: a loop
// stopped for a takeover leaves the socket open and the bytes it already took in the pipe.
internal sealed partial class TakeoverConnection
{
    /// <summary>
    /// Socket to input pipe. Idle, it waits with a zero-byte receive, which holds no buffer; the takeover cancels it or the
    /// receive that follows (a cancelled receive took nothing), and whatever a receive took reaches the pipe.
    /// </summary>
    private async Task ReceiveLoopAsync()
    {
        var socket = _socket!;
        var writer = _input!.Writer;
        var stop = _stopReceiving!.Token;
        Exception? error = null;
        try
        {
            while (true)
            {
                await socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None, stop).ConfigureAwait(false);
                if (Volatile.Read(ref _state) != Running)
                {
                    break;
                }
                // Cancellable too: a zero-byte receive can complete with nothing to read (Linux wakes it for a readiness
                // the previous receive already consumed), and a takeover must not wait here for the client's next bytes.
                // A cancelled receive took nothing; one that took bytes completes with them, whatever the token says.
                var received = await socket.ReceiveAsync(writer.GetMemory(), SocketFlags.None, stop).ConfigureAwait(false);
                if (received == 0)
                {
                    break; // the client's FIN
                }
                writer.Advance(received);
                // Backpressure: a reader that is behind by the pipe's pause threshold stops this loop.
                var flush = await writer.FlushAsync().ConfigureAwait(false);
                if (flush.IsCompleted || flush.IsCanceled)
                {
                    break;
                }
            }
        }
        catch (OperationCanceledException) when (stop.IsCancellationRequested)
        {
            // The takeover's.
        }
        catch (SocketException ex) when (IsReset(ex.SocketErrorCode))
        {
            error = new ConnectionResetException(ex.Message, ex);
        }
        catch (SocketException ex) when (ex.SocketErrorCode is SocketError.OperationAborted or SocketError.Interrupted)
        {
            // Closed here (an abort, the end of the connection).
        }
        catch (ObjectDisposedException)
        {
        }
        catch (Exception ex)
        {
            error = ex;
        }
        // Ended by the client or by an abort: the application hears of it. Stopped for a takeover: nothing is touched.
        if (Interlocked.CompareExchange(ref _state, Ended, Running) is Running or Ended)
        {
            writer.Complete(error);
            FireClosed();
        }
    }

    /// <summary>Output pipe to socket, until the application completes its output (or the takeover does).</summary>
    private async Task SendLoopAsync()
    {
        var socket = _socket!;
        var reader = _output!.Reader;
        Exception? error = null;
        try
        {
            while (true)
            {
                var result = await reader.ReadAsync().ConfigureAwait(false);
                if (result.IsCanceled)
                {
                    break; // an abort
                }
                var buffer = result.Buffer;
                if (!buffer.IsEmpty)
                {
                    await SendAsync(socket, buffer).ConfigureAwait(false);
                }
                reader.AdvanceTo(buffer.End);
                if (result.IsCompleted)
                {
                    break;
                }
            }
        }
        catch (SocketException ex) when (IsReset(ex.SocketErrorCode))
        {
            error = new ConnectionResetException(ex.Message, ex);
        }
        catch (SocketException ex) when (ex.SocketErrorCode is SocketError.OperationAborted or SocketError.Interrupted)
        {
        }
        catch (ObjectDisposedException)
        {
        }
        catch (Exception ex)
        {
            error = ex;
        }
        if (Volatile.Read(ref _state) is not (TakingOver or TakenOver))
        {
            // The application's end of the connection (or an abort, or the client gone): the socket closes, which also
            // ends the receive loop. Writers still waiting for room hear why.
            reader.Complete(error);
            CloseSocket();
        }
    }

    private static async ValueTask SendAsync(Socket socket, ReadOnlySequence<byte> buffer)
    {
        if (buffer.IsSingleSegment)
        {
            await socket.SendAsync(buffer.First, SocketFlags.None).ConfigureAwait(false);
            return;
        }
        foreach (var segment in buffer)
        {
            await socket.SendAsync(segment, SocketFlags.None).ConfigureAwait(false);
        }
    }

    private static bool IsReset(SocketError error) =>
        error is SocketError.ConnectionReset or SocketError.ConnectionAborted or SocketError.Shutdown or SocketError.NetworkReset;
}
