using System.Buffers;
using System.Buffers.Binary;

namespace Gateway.Relay;

// While a rate limit holds a peer, its pings and pongs still pass: limits apply to data messages, and a control frame is
// never delayed by one. TCP keeps one order, so a ping queued behind held data can only overtake it if the tunnel reads
// past that data: it reads ahead (bounded), keeps data frames where they are in the held bytes, and takes out each whole
// ping and pong that follows them. A pong that answers the gateway's own ping is swallowed as ever; every other one goes
// on to the other side at once, between frames, where RFC 6455 §5.4 allows control frames even inside a fragmented
// message. A Close is never taken out: it would overtake the messages it ends (§5.5.1 lets nothing follow it), so reading
// ahead stops there, and at any frame that breaks a rule, which the filter then judges in its turn.
internal sealed partial class RelayTunnel
{
    /// <summary>
    /// Held bytes beyond which the tunnel stops reading ahead: TCP's window then stops the peer, and a ping behind more
    /// data than this waits its turn. The held frame itself may be longer (it was one read's worth already).
    /// </summary>
    internal const int HoldReadAheadLimit = 16 * 1024;

    private ref HeldInput HeldOf(bool fromClient) => ref fromClient ? ref _clientHeld : ref _backendHeld;

    /// <summary>
    /// Waits until the hold of one direction ends (the time its bucket said), reading that peer meanwhile for control frames.
    /// Each read ahead starts as a zero-byte read (no buffer while it waits), then reads what is there into a small buffer
    /// of its own. Either may still be pending when the hold ends: the loop's next read of that peer finishes it first
    /// (<see cref="FinishReadAheadAsync"/>), so the hold never waits for the peer's next bytes.
    /// </summary>
    private async ValueTask WaitOutHoldAsync(bool fromClient, CancellationToken cancellationToken)
    {
        var time = _sweeper.Time;
        var wait = time.GetElapsedTime(time.GetTimestamp(), HeldOf(fromClient).ResumeAt);
        if (wait <= TimeSpan.Zero)
        {
            return;
        }
        // Whole milliseconds, rounded up: timers count in them, and a wait cut short would only find the bucket a fraction
        // short and wait again, at once (a busy loop for the last millisecond).
        var due = Task.Delay(TimeSpan.FromMilliseconds(Math.Ceiling(wait.TotalMilliseconds)), time, cancellationToken);
        await PassHeldControlFramesAsync(fromClient).ConfigureAwait(false); // those that came in the same read as the held frame
        while (!due.IsCompleted && (HeldOf(fromClient).ReadAhead ?? StartPeek(fromClient, cancellationToken)) is { } pending)
        {
            if (await Task.WhenAny(due, pending).ConfigureAwait(false) != pending)
            {
                break;
            }
            if (HeldOf(fromClient).ReadAheadBuffer is null)
            {
                // The zero-byte read ended: data is there (or the socket woke it for nothing, as Linux may). Read it into a
                // buffer of its own, raced with the hold's end like the zero-byte read.
                if (!pending.IsCompletedSuccessfully)
                {
                    EndReadAhead(fromClient, pending); // the loop's next read meets the same end and says what it was
                    break;
                }
                StartRead(fromClient, cancellationToken);
                continue;
            }
            if (!TakeReadAhead(fromClient, pending))
            {
                break;
            }
            await PassHeldControlFramesAsync(fromClient).ConfigureAwait(false);
        }
        await due.ConfigureAwait(false);
    }

    /// <summary>A zero-byte read of the held peer, or null when reading ahead has stopped (a Close, the bound, the end).</summary>
    private Task<int>? StartPeek(bool fromClient, CancellationToken cancellationToken)
    {
        ref var held = ref HeldOf(fromClient);
        Stream? stream = fromClient ? _client : _backend;
        if (held.ReadAheadStopped || held.ScanFrom < 0 || held.Length >= HoldReadAheadLimit || stream is null)
        {
            return null;
        }
        return held.ReadAhead = stream.ReadAsync(Memory<byte>.Empty, cancellationToken).AsTask();
    }

    private void StartRead(bool fromClient, CancellationToken cancellationToken)
    {
        ref var held = ref HeldOf(fromClient);
        var buffer = ArrayPool<byte>.Shared.Rent(ReadAheadSize);
        held.ReadAheadBuffer = buffer;
        held.ReadAhead = (fromClient ? _client! : _backend!).ReadAsync(buffer, cancellationToken).AsTask();
    }

    /// <summary>What one read ahead takes at most: it runs only while a peer is held, and its buffer is its own.</summary>
    private const int ReadAheadSize = 4096;

    /// <summary>
    /// A read ahead completed during the hold: its bytes go behind the held ones. False when it ended the peer's stream or
    /// failed: reading ahead stops, and the loop's next read meets the same end (a socket's end and failure stay).
    /// </summary>
    private bool TakeReadAhead(bool fromClient, Task<int> completed)
    {
        ref var held = ref HeldOf(fromClient);
        var buffer = held.ReadAheadBuffer!;
        held.ReadAhead = null;
        held.ReadAheadBuffer = null;
        var read = completed.IsCompletedSuccessfully ? completed.Result : 0;
        _ = completed.Exception;
        if (read > 0)
        {
            Volatile.Write(ref (fromClient ? ref _clientAlive : ref _backendAlive).LastHeard, _sweeper.Now);
            Append(ref held, buffer.AsSpan(0, read));
        }
        else
        {
            held.ReadAheadStopped = true;
        }
        ArrayPool<byte>.Shared.Return(buffer);
        return read > 0;
    }

    private void EndReadAhead(bool fromClient, Task<int> completed)
    {
        _ = completed.Exception;
        HeldOf(fromClient).ReadAhead = null;
        HeldOf(fromClient).ReadAheadStopped = true;
    }

    /// <summary>
    /// Before the loop reads a peer whose hold left a read ahead pending (checked by the caller, so a tunnel never held pays
    /// nothing): that read ends first, one read at a time. Returns -1 when it was a zero-byte read (nothing taken: read
    /// as usual), 0 at the end of the peer's stream, or the count of bytes it read, now queued as held bytes that are due
    /// at once (the loop's read takes them from there). A failure is thrown as the loop's own read would throw it.
    /// </summary>
    private async ValueTask<int> FinishReadAheadAsync(bool fromClient)
    {
        var pending = HeldOf(fromClient).ReadAhead!;
        var buffer = HeldOf(fromClient).ReadAheadBuffer;
        HeldOf(fromClient).ReadAhead = null;
        HeldOf(fromClient).ReadAheadBuffer = null;
        int read;
        try
        {
            read = await pending.ConfigureAwait(false);
        }
        catch
        {
            if (buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
            throw;
        }
        if (buffer is null)
        {
            return -1;
        }
        if (read > 0)
        {
            ref var held = ref HeldOf(fromClient);
            held.ResumeAt = 0;
            held.ScanFrom = -1; // the bytes continue the stream wherever the filter stopped, maybe inside a frame
            Append(ref held, buffer.AsSpan(0, read));
        }
        ArrayPool<byte>.Shared.Return(buffer);
        return read;
    }

    /// <summary>Puts bytes behind the held ones (in a larger buffer when they do not fit).</summary>
    private static void Append(ref HeldInput held, ReadOnlySpan<byte> bytes)
    {
        var end = held.Offset + held.Length;
        if (held.Buffer is null || held.Buffer.Length - end < bytes.Length)
        {
            var larger = ArrayPool<byte>.Shared.Rent(held.Length + bytes.Length);
            if (held.Buffer is not null)
            {
                held.Buffer.AsSpan(held.Offset, held.Length).CopyTo(larger);
                ArrayPool<byte>.Shared.Return(held.Buffer);
            }
            held.Buffer = larger;
            held.Offset = 0;
            end = held.Length;
        }
        bytes.CopyTo(held.Buffer.AsSpan(end));
        Volatile.Write(ref held.Length, held.Length + bytes.Length);
    }

    /// <summary>Takes the whole pings and pongs out of the held bytes, scanned so far, and passes each on.</summary>
    private async ValueTask PassHeldControlFramesAsync(bool fromClient)
    {
        if (HeldOf(fromClient).ScanFrom < 0)
        {
            return;
        }
        byte[]? frame = null;
        try
        {
            while (true)
            {
                frame ??= ArrayPool<byte>.Shared.Rent(WebSocketFrame.MaxControlFrameLength + 8);
                var length = TakeControlFrame(ref HeldOf(fromClient), fromClient, frame);
                if (length == 0)
                {
                    break;
                }
                await PassControlFrameAsync(fromClient, frame.AsMemory(0, length)).ConfigureAwait(false);
            }
        }
        finally
        {
            if (frame is not null)
            {
                ArrayPool<byte>.Shared.Return(frame);
            }
        }
    }

    /// <summary>
    /// Scans the held bytes from where the last scan stopped, over whole frames: the next whole ping or pong after held data
    /// is copied to <paramref name="frame"/> and removed. Returns its length, 0 when there is none (yet).
    /// </summary>
    private static int TakeControlFrame(ref HeldInput held, bool fromClient, Span<byte> frame)
    {
        var bytes = held.Buffer.AsSpan(held.Offset, held.Length);
        var at = held.ScanFrom;
        while (at + 2 <= bytes.Length)
        {
            var first = bytes[(int)at];
            var second = bytes[(int)at + 1];
            var opcode = (byte)(first & 0x0F);
            var masked = (second & 0x80) != 0;
            var length7 = second & 0x7F;
            var headerLength = 2 + (length7 == 126 ? 2 : length7 == 127 ? 8 : 0) + (masked ? 4 : 0);
            if (at + headerLength > bytes.Length)
            {
                break;
            }
            var header = bytes.Slice((int)at, headerLength);
            long payload = length7 switch
            {
                126 => BinaryPrimitives.ReadUInt16BigEndian(header[2..]),
                127 => (long)BinaryPrimitives.ReadUInt64BigEndian(header[2..]),
                _ => length7,
            };
            if ((opcode & 0x8) == 0)
            {
                if (payload < 0)
                {
                    held.ReadAheadStopped = true; // §5.2: a broken length; the filter closes the tunnel for it
                    break;
                }
                at += headerLength + payload; // a data frame keeps its place
                continue;
            }
            // §5.5: a control frame is whole (FIN), unextended (no RSV bits), at most 125 bytes; §5.1: masked only by clients.
            if (opcode is not (WebSocketFrame.OpcodePing or WebSocketFrame.OpcodePong)
                || (first & 0xF0) != 0x80 || payload > WebSocketFrame.MaxControlPayload || masked != fromClient)
            {
                held.ReadAheadStopped = true; // a Close, or a frame that breaks a rule: it stays in order, and so does what follows
                break;
            }
            var frameLength = headerLength + (int)payload;
            if (at + frameLength > bytes.Length)
            {
                break;
            }
            bytes.Slice((int)at, frameLength).CopyTo(frame);
            bytes[((int)at + frameLength)..].CopyTo(bytes[(int)at..]);
            held.ScanFrom = at;
            Volatile.Write(ref held.Length, held.Length - frameLength);
            return frameLength;
        }
        held.ScanFrom = at;
        return 0;
    }

    /// <summary>
    /// A ping or pong that overtook held data: a pong answering the gateway's ping is swallowed (the peer is alive), anything
    /// else goes to the other side now. That side's relay is at a frame boundary: its loop is the one waiting out the hold.
    /// </summary>
    private async ValueTask PassControlFrameAsync(bool fromClient, ReadOnlyMemory<byte> frame)
    {
        ref var peer = ref fromClient ? ref _clientAlive : ref _backendAlive;
        if (IsAnswerToOurPing(frame.Span, Volatile.Read(ref peer.Outstanding), peer.Payload))
        {
            OnPong(ref peer, fromClient ? RelayMetrics.Side.Client : RelayMetrics.Side.Backend);
            return;
        }
        await InjectAsync(toBackend: fromClient, frame, InjectionWait.ForInjector, isClose: false).ConfigureAwait(false);
    }

    private static bool IsAnswerToOurPing(ReadOnlySpan<byte> frame, bool outstanding, ulong expected)
    {
        var masked = (frame[1] & 0x80) != 0;
        var headerLength = masked ? 6 : 2;
        if (!outstanding || (frame[0] & 0x0F) != WebSocketFrame.OpcodePong || (frame[1] & 0x7F) != WebSocketFrame.PingPayloadLength)
        {
            return false;
        }
        var payload = BinaryPrimitives.ReadUInt64BigEndian(frame[headerLength..]);
        if (masked)
        {
            var key = BinaryPrimitives.ReadUInt32BigEndian(frame[2..]);
            payload ^= ((ulong)key << 32) | key;
        }
        return payload == expected;
    }
}
