using System.Net.Sockets;
using Gateway.Http;

namespace Gateway.Relay;

// The usual message's read, on the call that woke the loop: when a peer's stream is its bare socket and nothing about the
// direction is unusual, the loop takes what the socket holds without waiting and scans it in one synchronous call, instead
// of an asynchronous read through the tunnel's read path, the stream and the socket's operation object, each a layer
// whose cost at chat rates (every message a wake-up) was a fifth of the relay's own CPU (bench/RESULTS.md, session 12).
// Anything unusual leaves the read to the asynchronous path, which owns every rule; the state this path leaves behind
// (a violation, a hold, a Close seen) routes the loop's next wait there.
internal sealed partial class RelayTunnel
{
    /// <summary>Nothing was read: the asynchronous read path reads instead.</summary>
    private const int ReadLater = -1;

    /// <summary>The peer's socket failed; the error is the read's outcome.</summary>
    private const int ReadFailed = -2;

    /// <summary>
    /// Reads what the client's socket holds now into <paramref name="buffer"/> and scans it. Returns the bytes to write
    /// to the backend; 0 when nothing goes on (a swallowed pong, part of a header, or a frame the next wait acts on: a
    /// violation, a hold); <see cref="ReadLater"/> when nothing was read (not a bare socket, bytes already held, a pong
    /// due, the socket empty or at its end); <see cref="ReadFailed"/> with <paramref name="failure"/> when the socket failed.
    /// </summary>
    private int ReadClientNow(byte[] buffer, CancellationToken cancellationToken, out Exception? failure)
    {
        failure = null;
        if (_client is not DirectSocketStream socket || _readCarryLength != 0 || !ClientWaitIsPlain || cancellationToken.IsCancellationRequested)
        {
            return ReadLater;
        }
        var read = ReceiveNow(socket, buffer, out failure);
        if (read <= 0)
        {
            return read;
        }
        var produced = OnReadFromClient(buffer.AsSpan(0, read));
        _clientResumedAt = 0;
        return produced;
    }

    /// <summary>The same for the backend's socket (<see cref="ReadClientNow"/>); the bytes returned go to the client.</summary>
    private int ReadBackendNow(byte[] buffer, CancellationToken cancellationToken, out Exception? failure)
    {
        failure = null;
        if (_backend is not DirectSocketStream socket || _backendCarryLength != 0 || !BackendWaitIsPlain || cancellationToken.IsCancellationRequested)
        {
            return ReadLater;
        }
        var read = ReceiveNow(socket, buffer, out failure);
        if (read <= 0)
        {
            return read;
        }
        var produced = OnReadFromBackend(buffer.AsSpan(0, read), out _, out _);
        if (produced == 0)
        {
            // Only a pong, part of a header, or what the next wait acts on: the client has whole frames up to here.
            _toClient.EndRelay(_fromBackend.AtFrameBoundary);
        }
        return produced;
    }

    /// <summary>
    /// A count of bytes received, <see cref="ReadLater"/> (nothing there, or the end of the stream, which the asynchronous
    /// read then sees again and reports), or <see cref="ReadFailed"/> with the failure as <see cref="NetworkStream"/>
    /// reports one (an <see cref="IOException"/> around the socket's error), so the log and the close say the same.
    /// </summary>
    private static int ReceiveNow(DirectSocketStream socket, byte[] buffer, out Exception? failure)
    {
        failure = null;
        var read = socket.ReceiveNow(buffer, out var error);
        if (error != SocketError.Success)
        {
            var cause = new SocketException((int)error);
            failure = new IOException($"Unable to read data from the transport connection: {cause.Message}.", cause);
            return ReadFailed;
        }
        return read > 0 ? read : ReadLater;
    }
}
