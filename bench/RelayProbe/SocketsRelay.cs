using System.Buffers;
using System.Net.Sockets;

namespace RelayProbe;

/// <summary>
/// The gateway relay's socket pattern without its WebSocket work: each direction waits with a zero-byte receive (no
/// buffer while idle), then reads what is there into a pooled buffer without waiting, and sends without waiting
/// (asynchronously only for what does not fit).
/// </summary>
internal static class SocketsRelay
{
    private const int BufferSize = 16 * 1024;

    public static async Task RunAsync(Socket client, Socket backend, int touch, int stride)
    {
        // The tunnel's own state, as a proxy keeps one: each direction's lines apart, touched once per message.
        var state = touch > 0 ? new byte[(2 * touch + 1) * stride] : null;
        client.Blocking = false;
        backend.Blocking = false;
        try
        {
            await Task.WhenAny(PumpAsync(client, backend, state, 0, touch, stride), PumpAsync(backend, client, state, touch, touch, stride));
        }
        finally
        {
            client.Dispose();
            backend.Dispose();
        }
    }

    private static async Task PumpAsync(Socket from, Socket to, byte[]? state, int firstLine, int lines, int stride)
    {
        try
        {
            while (true)
            {
                await from.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None).ConfigureAwait(false);
                var buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
                try
                {
                    var read = from.Receive(buffer, SocketFlags.None, out var error);
                    if (error == SocketError.WouldBlock)
                    {
                        continue;
                    }
                    if (error != SocketError.Success || read == 0)
                    {
                        return;
                    }
                    for (var line = firstLine; line < firstLine + lines; line++)
                    {
                        state![line * stride]++;
                    }
                    var sent = to.Send(buffer.AsSpan(0, read), SocketFlags.None, out error);
                    if (error is not (SocketError.Success or SocketError.WouldBlock))
                    {
                        return;
                    }
                    if (error == SocketError.WouldBlock)
                    {
                        sent = 0;
                    }
                    if (sent < read)
                    {
                        await to.SendAsync(buffer.AsMemory(sent, read - sent), SocketFlags.None).ConfigureAwait(false);
                    }
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                }
            }
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }
    }
}
