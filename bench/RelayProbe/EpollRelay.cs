using System.Net.Sockets;

namespace RelayProbe;

/// <summary>
/// A readiness loop of its own: one thread per core, each with an epoll instance (level-triggered) and one buffer. A
/// readable socket is read once per report, straight into that buffer, and what was read is sent to the other socket
/// at once: one <c>recv</c> and one <c>send</c> per message and direction, as nginx does. No zero-byte probe, no
/// operation objects, no hand-off. A send the peer cannot take waits in place (blocking), which is fine for a probe
/// whose peers keep reading, and not for a product.
/// </summary>
internal sealed unsafe class EpollRelay
{
    private const int BufferSize = 16 * 1024;
    private const int MaxEvents = 256;

    /// <summary>Slots are never reused: a probe run opens far fewer connections than this.</summary>
    private const int MaxPairs = 1 << 18;

    private readonly int[] _epolls;
    private readonly Pair?[] _pairs = new Pair?[MaxPairs];
    private int _pairCount;
    private int _next;

    private sealed class Pair(Socket client, Socket backend)
    {
        public readonly Socket Client = client;
        public readonly Socket Backend = backend;
        public int Closed;
    }

    public EpollRelay(int loops)
    {
        _epolls = new int[loops];
        for (var i = 0; i < loops; i++)
        {
            var epoll = Epoll.Create(0);
            if (epoll < 0)
            {
                throw new InvalidOperationException($"epoll_create1 failed: errno {System.Runtime.InteropServices.Marshal.GetLastPInvokeError()}");
            }
            _epolls[i] = epoll;
            new Thread(Loop) { IsBackground = true, Name = $"epoll {i}" }.Start(epoll);
        }
    }

    public void Add(Socket client, Socket backend)
    {
        // Never used asynchronously, so .NET never registers them with its own engine; non-blocking for the reads.
        client.Blocking = false;
        backend.Blocking = false;
        var slot = Interlocked.Increment(ref _pairCount) - 1;
        if (slot >= MaxPairs)
        {
            client.Dispose();
            backend.Dispose();
            return;
        }
        Volatile.Write(ref _pairs[slot], new Pair(client, backend));
        var epoll = _epolls[(uint)Interlocked.Increment(ref _next) % (uint)_epolls.Length];
        Epoll.Add(epoll, (int)client.Handle, Epoll.In | Epoll.RdHup, (ulong)slot << 1);
        Epoll.Add(epoll, (int)backend.Handle, Epoll.In | Epoll.RdHup, ((ulong)slot << 1) | 1);
    }

    private void Loop(object? state)
    {
        var epoll = (int)state!;
        var buffer = new byte[BufferSize];
        var events = stackalloc byte[MaxEvents * Epoll.EventSize];
        while (true)
        {
            var count = Epoll.Wait(epoll, events, MaxEvents, -1);
            for (var i = 0; i < count; i++)
            {
                var data = Epoll.DataAt(events, i);
                var pair = Volatile.Read(ref _pairs[(int)(data >> 1)]);
                if (pair is null || Volatile.Read(ref pair.Closed) != 0)
                {
                    continue; // closed by the other direction in this batch
                }
                var fromClient = (data & 1) == 0;
                if (!Relay(fromClient ? pair.Client : pair.Backend, fromClient ? pair.Backend : pair.Client, buffer))
                {
                    Close(epoll, pair);
                }
            }
        }
    }

    /// <summary>One read, and what it got sent on; false when the connection is over.</summary>
    private static bool Relay(Socket from, Socket to, byte[] buffer)
    {
        var read = from.Receive(buffer, SocketFlags.None, out var error);
        if (error == SocketError.WouldBlock)
        {
            return true;
        }
        if (error != SocketError.Success || read == 0)
        {
            return false;
        }
        var sent = 0;
        while (sent < read)
        {
            var n = to.Send(buffer.AsSpan(sent, read - sent), SocketFlags.None, out error);
            if (error == SocketError.WouldBlock)
            {
                to.Blocking = true; // rare here: wait for room in place
                n = to.Send(buffer.AsSpan(sent, read - sent), SocketFlags.None, out error);
                to.Blocking = false;
            }
            if (error != SocketError.Success)
            {
                return false;
            }
            sent += n;
        }
        return true;
    }

    private static void Close(int epoll, Pair pair)
    {
        if (Interlocked.Exchange(ref pair.Closed, 1) != 0)
        {
            return;
        }
        Epoll.Remove(epoll, (int)pair.Client.Handle);
        Epoll.Remove(epoll, (int)pair.Backend.Handle);
        pair.Client.Dispose();
        pair.Backend.Dispose();
    }
}
