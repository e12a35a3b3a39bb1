using System.Buffers;
using System.Runtime.CompilerServices;

namespace Gateway.Relay;

// The client-to-backend direction, read side: the relay's loop reads the client through these, and gets only what goes on to the
// backend (the gateway's pongs are swallowed, a split frame header is held back until it is whole).
internal sealed partial class RelayTunnel
{
    /// <summary>
    /// What the tunnel reads by itself while a pong is due: a pong to the gateway's ping is 14 bytes (RFC 6455 §5.5.3,
    /// masked, 8-byte payload), and anything longer that arrives then goes on to the loop in pieces of this size.
    /// </summary>
    private const int PongReadLength = 256;

    private byte[]? _readCarry;
    private int _readCarryLength;
    private byte[]? _pending;
    private int _pendingOffset;
    private int _pendingLength;
    private volatile bool _clientReadEnded;
    private volatile bool _clientViolation;

    private ValueTask<int> ReadFromClientAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        if (_clientReadEnded)
        {
            return new ValueTask<int>(0);
        }
        if (_pendingLength > 0)
        {
            return new ValueTask<int>(TakePending(buffer.Span));
        }
        if (ClientHeld)
        {
            // Held by a rate limit: the loop's idle wait lasts until the bucket has room; its read then scans the held bytes.
            return buffer.IsEmpty ? WaitForClientHoldAsync(cancellationToken) : ReadCoreAsync(buffer, cancellationToken);
        }
        if (_clientViolation)
        {
            return CloseForClientViolationAsync(cancellationToken);
        }
        if (_fromClient.CloseCode != 0 && _fromClient.AtFrameBoundary)
        {
            return new ValueTask<int>(EndAfterClientClose());
        }
        return buffer.IsEmpty ? ZeroByteReadAsync(cancellationToken) : ReadCoreAsync(buffer, cancellationToken);
    }

    /// <summary>
    /// Nothing but the client's data (or its end) can end the loop's idle wait: no bytes held or read ahead, no pong due,
    /// no violation or Close to act on. The loop then waits on the client's stream itself (<see cref="PumpAsync"/>);
    /// otherwise through <see cref="ReadFromClientAsync"/>.
    /// </summary>
    private bool ClientWaitIsPlain =>
        !_clientReadEnded && _pendingLength == 0 && !ClientHeld && !_clientViolation && _fromClient.CloseCode == 0
        && _clientHeld.ReadAhead is null && !Volatile.Read(ref _clientAlive.Outstanding);

    /// <summary>
    /// The client's Close has gone to the backend, and after it the client sends nothing more (RFC 6455 §5.5.1): the
    /// client-to-backend copy ends here instead of leaving the loop's read pending. When the backend then hangs up,
    /// the tunnel finds the other direction finished and needs no cancellation, which would unwind as a chain of
    /// OperationCanceledExceptions through every stream layer. A backend that never closes is cut after the close grace.
    /// </summary>
    private int EndAfterClientClose()
    {
        _clientReadEnded = true;
        StartCloseDeadline();
        return 0;
    }

    /// <summary>What the idle wait returns when what woke it was only for the tunnel (a swallowed pong): wait again.</summary>
    private const int NothingYet = -1;

    /// <summary>
    /// The loop's idle wait when a pong is due or a read the hold left pending must end first (otherwise the loop waits
    /// on the stream itself): no buffer is held. Returns 0 when the loop may read (data, or the end, is there), or
    /// <see cref="NothingYet"/>. When data arrives while a pong is due, the tunnel reads it itself into a
    /// small buffer: the loop rents its 16 KiB buffer as soon as this wait ends and keeps it until a read returns data, so
    /// handing it a pong that is then swallowed would leave every idle tunnel holding 16 KiB until its client next spoke.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> ZeroByteReadAsync(CancellationToken cancellationToken)
    {
        if (_clientHeld.ReadAhead is not null)
        {
            // A read the hold left pending ends first; bytes it took are queued as held, and the loop's read takes them there.
            var ahead = await FinishClientReadAheadAsync(cancellationToken).ConfigureAwait(false);
            if (ahead >= 0)
            {
                return 0; // ended, or now held: the loop's next read takes them
            }
        }
        byte[]? small = null;
        int read;
        try
        {
            await _client!.ReadAsync(Memory<byte>.Empty, cancellationToken).ConfigureAwait(false);
            if (!Volatile.Read(ref _clientAlive.Outstanding) || _clientReadEnded)
            {
                return 0;
            }
            small = ArrayPool<byte>.Shared.Rent(PongReadLength);
            var held = TakeCarry(_readCarry, ref _readCarryLength, small);
            read = await _client.ReadAsync(small.AsMemory(held, PongReadLength - held), cancellationToken).ConfigureAwait(false);
            read = read == 0 ? 0 : read + held; // at the end, whatever was held is a truncated header
        }
        catch (Exception ex) when (IsPeerFailure(ex, cancellationToken))
        {
            if (small is not null)
            {
                ArrayPool<byte>.Shared.Return(small);
            }
            return await OnClientReadEndedAsync(ex).ConfigureAwait(false);
        }
        catch
        {
            if (small is not null)
            {
                ArrayPool<byte>.Shared.Return(small);
            }
            throw;
        }

        if (read == 0)
        {
            ArrayPool<byte>.Shared.Return(small);
            return await OnClientReadEndedAsync(null).ConfigureAwait(false);
        }
        var produced = OnReadFromClient(small.AsSpan(0, read));
        if (produced > 0)
        {
            // Not (only) a pong: the loop gets these bytes from its next read, before anything newer.
            (_pending, _pendingOffset, _pendingLength) = (small, 0, produced);
            return 0;
        }
        ArrayPool<byte>.Shared.Return(small);
        if (_clientViolation || ClientHeld)
        {
            return 0; // the loop's next read closes the tunnel, or waits out the hold
        }
        // The pong was swallowed (or half a header is held): nothing for the loop, which waits again. It does so on
        // the client's stream itself once nothing is due, so an idle tunnel keeps no state machine of this method.
        return NothingYet;
    }

    /// <summary>The loop's idle wait while a rate limit holds the client: until the bucket has room, then "data ready".</summary>
    private async ValueTask<int> WaitForClientHoldAsync(CancellationToken cancellationToken)
    {
        try
        {
            await WaitOutHoldAsync(fromClient: true, cancellationToken).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (_clientGone.IsCancellationRequested)
        {
            return await OnClientReadEndedAsync(null).ConfigureAwait(false);
        }
        return 0;
    }

    /// <summary>Hands the loop the bytes the tunnel read while waiting for a pong.</summary>
    private int TakePending(Span<byte> destination)
    {
        if (destination.IsEmpty)
        {
            return 0; // a zero-byte read: data is ready
        }
        var count = Math.Min(destination.Length, _pendingLength);
        _pending.AsSpan(_pendingOffset, count).CopyTo(destination);
        _pendingOffset += count;
        _pendingLength -= count;
        if (_pendingLength == 0)
        {
            ArrayPool<byte>.Shared.Return(_pending!);
            _pending = null;
        }
        return count;
    }

    private void ReturnPending()
    {
        if (Interlocked.Exchange(ref _pending, null) is { } pending)
        {
            _pendingLength = 0;
            ArrayPool<byte>.Shared.Return(pending);
        }
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> ReadCoreAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        if (buffer.Length <= WebSocketFrame.MaxHeaderLength + 2)
        {
            throw new ArgumentException("the relay needs read buffers longer than a frame header", nameof(buffer));
        }
        while (true)
        {
            int filled, read;
            if (ClientHeld)
            {
                // A rate limit held these bytes: nothing more is read from the client until they are scanned again.
                try
                {
                    await WaitOutHoldAsync(fromClient: true, cancellationToken).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (_clientGone.IsCancellationRequested)
                {
                    return await OnClientReadEndedAsync(null).ConfigureAwait(false);
                }
                if (_clientReadEnded)
                {
                    return 0;
                }
                _clientResumedAt = _clientHeld.ResumeAt;
                filled = TakeCarry(_readCarry, ref _readCarryLength, buffer.Span); // read-ahead bytes may continue a split header
                filled += TakeHeld(ref _clientHeld, buffer.Span[filled..]);
                read = 0;
            }
            else
            {
                if (_clientHeld.ReadAhead is not null)
                {
                    // A read the hold left pending ends first; bytes it took are queued as held, and the loop's read takes them there.
                    var ahead = await FinishClientReadAheadAsync(cancellationToken).ConfigureAwait(false);
                    if (ahead == 0)
                    {
                        return 0;
                    }
                    if (ahead > 0)
                    {
                        continue; // now held: taken below
                    }
                }
                filled = TakeCarry(_readCarry, ref _readCarryLength, buffer.Span);
                try
                {
                    read = await _client!.ReadAsync(buffer[filled..], cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (IsPeerFailure(ex, cancellationToken))
                {
                    return await OnClientReadEndedAsync(ex).ConfigureAwait(false);
                }
                if (read == 0)
                {
                    return await OnClientReadEndedAsync(null).ConfigureAwait(false);
                }
            }
            var produced = OnReadFromClient(buffer.Span[..(filled + read)]);
            _clientResumedAt = 0;
            if (produced > 0)
            {
                return produced;
            }
            if (_clientViolation)
            {
                return await CloseForClientViolationAsync(cancellationToken).ConfigureAwait(false);
            }
            if (ClientHeld)
            {
                continue; // held before anything passed: wait, then scan again
            }
            // Everything read was a swallowed pong or part of a header: never return 0 (end of stream) for it. Wait for
            // more without the loop's buffer, as the loop itself does between reads, so an idle tunnel holds no buffer.
            while (await ZeroByteReadAsync(cancellationToken).ConfigureAwait(false) == NothingYet)
            {
            }
            if (_pendingLength > 0)
            {
                return TakePending(buffer.Span);
            }
            if (ClientHeld)
            {
                continue;
            }
            if (_clientViolation || _clientReadEnded)
            {
                return 0;
            }
        }
    }

    /// <summary>Notes the client's activity and filters what it sent; returns the bytes that go on to the backend.</summary>
    private int OnReadFromClient(Span<byte> data)
    {
        Volatile.Write(ref _clientAlive.LastHeard, _sweeper.Now);
        _toBackend.BeginRelay();
        var produced = Filter(ref _fromClient, ref _clientAlive, RelayMetrics.Side.Client, data, ref _readCarry, ref _readCarryLength,
            ref _clientHeld, out var violation, out _);
        if (violation)
        {
            _clientViolation = true;
        }
        if (_fromClient.CloseCode != 0)
        {
            Decide(RelayMetrics.ClosedBy.Client, _fromClient.CloseCode);
        }
        if (produced == 0)
        {
            // Nothing for the loop to write: the backend has what it had, whole frames up to here.
            _toBackend.EndRelay(_fromClient.AtFrameBoundary);
        }
        return produced;
    }

    /// <summary>
    /// The client's stream ended (0) or failed (<paramref name="error"/>). After its Close, or after the gateway began
    /// closing, that is the expected end; otherwise the client vanished without a Close (RFC 6455 §7.1.5: 1006), and
    /// the backend hears a Close 1001 in its place.
    /// </summary>
    private async ValueTask<int> OnClientReadEndedAsync(Exception? error)
    {
        _clientReadEnded = true;
        if (_fromClient.CloseCode == 0 && !IsClosing)
        {
            await ClientLostAsync(error).ConfigureAwait(false);
        }
        return 0;
    }

    /// <summary>
    /// A failure of the peer (reset, abort) rather than the tunnel's own cancellation of a loop, which the loop expects to
    /// see as an exception. When the client's request is aborted, the loops' token is cancelled with it: that is the client's
    /// doing, or the gateway's, and ends the stream quietly too.
    /// </summary>
    private bool IsPeerFailure(Exception exception, CancellationToken cancellationToken) =>
        exception is IOException or OperationCanceledException or ObjectDisposedException or System.Net.Sockets.SocketException or InvalidOperationException
        && (!cancellationToken.IsCancellationRequested || _clientGone.IsCancellationRequested);

    /// <summary>
    /// Finishes a read the hold left pending (<see cref="FinishReadAheadAsync"/>): -1 when it took nothing (read as usual),
    /// 0 when the client ended (said so already), 1 when its bytes are queued as held.
    /// </summary>
    private async ValueTask<int> FinishClientReadAheadAsync(CancellationToken cancellationToken)
    {
        int ahead;
        try
        {
            ahead = await FinishReadAheadAsync(fromClient: true).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsPeerFailure(ex, cancellationToken))
        {
            await OnClientReadEndedAsync(ex).ConfigureAwait(false);
            return 0;
        }
        if (ahead == 0)
        {
            await OnClientReadEndedAsync(null).ConfigureAwait(false);
            return 0;
        }
        return ahead < 0 ? -1 : 1;
    }
}
