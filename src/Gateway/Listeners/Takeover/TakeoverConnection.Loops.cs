using System.Buffers;
using System.Net.Sockets;
using Gateway.Http;
using Microsoft.AspNetCore.Connections;

namespace Gateway.Listeners.Takeover;

// The two loops between the socket and the pipes, as Kestrel's socket transport runs them, with one difference: a loop
// stopped for a takeover leaves the socket open and the bytes it already took in the pipe.
internal sealed partial class TakeoverConnection
{
    /// <summary>
    /// Socket to input pipe. Idle, it waits with a zero-byte receive, which holds no buffer and takes nothing: a takeover
    /// leaves that one pending (the tunnel's first read waits for it) and nothing is ever cancelled; after a wake it reads
    /// what is there without waiting, and whatever it took reaches the pipe.
    /// </summary>
    private async Task ReceiveLoopAsync()
    {
        var socket = _socket!;
        var writer = _input!.Writer;
        Exception? error = null;
        try
        {
            while (true)
            {
                // Parked: a takeover from here on leaves this receive pending instead of cancelling it (a cancellation
                // throws), and the loop stops when it completes. Full fences on both sides (here: park, then read the
                // state; the takeover: move the state, then read this), so either the takeover sees the loop parked or the
                // loop sees the takeover and stops before it receives.
                Interlocked.Exchange(ref _loopAt, LoopParked);
                if (Volatile.Read(ref _state) != Running)
                {
                    break;
                }
                await socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None).ConfigureAwait(false);
                Interlocked.Exchange(ref _loopAt, LoopBusy);
                if (Volatile.Read(ref _state) != Running)
                {
                    break;
                }
                // Without waiting (the socket is non-blocking): a zero-byte receive can complete with nothing to read
                // (Linux wakes it for a readiness the previous receive already consumed); the loop then parks again,
                // rather than wait in a receive that a takeover would have to cancel.
                var received = socket.Receive(writer.GetMemory().Span, SocketFlags.None, out var receiveError);
                if (receiveError == SocketError.WouldBlock)
                {
                    continue;
                }
                if (receiveError != SocketError.Success)
                {
                    throw new SocketException((int)receiveError);
                }
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

    /// <summary>
    /// Each segment is sent without waiting first (the socket is non-blocking while the loops own it); only what the
    /// socket cannot take now is sent asynchronously. A handshake's 101 nearly always fits, so a connection the relay
    /// takes over never made the socket's asynchronous send object (DirectSocketStream does the same afterwards).
    /// </summary>
    private static async ValueTask SendAsync(Socket socket, ReadOnlySequence<byte> buffer)
    {
        foreach (var segment in buffer)
        {
            var sent = DirectSocketStream.SendNow(socket, segment.Span, out var error);
            if (error != SocketError.Success)
            {
                throw new SocketException((int)error);
            }
            if (sent < segment.Length)
            {
                await socket.SendAsync(segment[sent..], SocketFlags.None).ConfigureAwait(false);
            }
        }
    }

    private static bool IsReset(SocketError error) =>
        error is SocketError.ConnectionReset or SocketError.ConnectionAborted or SocketError.Shutdown or SocketError.NetworkReset;
}
