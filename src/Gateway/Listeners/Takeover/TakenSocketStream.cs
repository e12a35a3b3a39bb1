using System.Net.Sockets;
using Gateway.Http;

namespace Gateway.Listeners.Takeover;

/// <summary>
/// The socket of a taken-over (or direct) connection, whose first read waits for the transport's last receive to end.
/// The transport's receive loop idles in a zero-byte receive, which takes nothing from the socket; cancelling it would
/// cost an <see cref="OperationCanceledException"/> per connection (about 4 % of the CPU of a burst of connects, by
/// <c>perf</c>), so a takeover leaves it pending and the loop stops by itself when it completes. Until then the socket
/// already has a receive in flight: this stream's first read waits for it, then reads as a <see cref="NetworkStream"/>.
/// Writes go to the socket at once (<see cref="DirectSocketStream"/>).
/// </summary>
internal sealed class TakenSocketStream(Socket socket, bool ownsSocket, Task? lastReceive) : DirectSocketStream(socket, ownsSocket)
{
    private Task? _lastReceive = lastReceive is { IsCompleted: false } ? lastReceive : null;

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
        _lastReceive is { } pending ? ReadAfterAsync(pending, buffer, cancellationToken) : base.ReadAsync(buffer, cancellationToken);

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(Span<byte> buffer)
    {
        WaitForLastReceive();
        return base.Read(buffer);
    }

    public override int Read(byte[] buffer, int offset, int count)
    {
        WaitForLastReceive();
        return base.Read(buffer, offset, count);
    }

    public override int ReadByte()
    {
        WaitForLastReceive();
        return base.ReadByte();
    }

    private async ValueTask<int> ReadAfterAsync(Task pending, Memory<byte> buffer, CancellationToken cancellationToken)
    {
        // The loop's receive ends when the client's bytes (or its end) arrive, or when the socket is closed; the loop
        // catches whatever it ends with, so this never throws but for the caller's own cancellation.
        await pending.WaitAsync(cancellationToken).ConfigureAwait(false);
        _lastReceive = null;
        return await base.ReadAsync(buffer, cancellationToken).ConfigureAwait(false);
    }

    private void WaitForLastReceive()
    {
        if (_lastReceive is { } pending)
        {
            pending.GetAwaiter().GetResult();
            _lastReceive = null;
        }
    }
}
