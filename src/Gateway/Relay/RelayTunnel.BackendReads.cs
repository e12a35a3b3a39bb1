using System.Runtime.CompilerServices;

namespace Gateway.Relay;

// The backend-to-client direction, read side: the relay's loop reads the backend through these, and gets only what
// goes on to the client (the gateway's pongs are swallowed, a split frame header is held back until it is whole).
internal sealed partial class RelayTunnel
{
    private byte[]? _backendCarry;
    private int _backendCarryLength;
    private volatile bool _backendReadEnded;
    private volatile bool _backendViolation;
    private bool _dropNextClientWrite;
    private int _backendDisposed;

    private ValueTask<int> ReadFromBackendAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        if (_backendReadEnded)
        {
            return new ValueTask<int>(0);
        }
        if (_backendViolation)
        {
            return CloseForBackendViolationAsync();
        }
        if (_backendRateLimitClose)
        {
            return CloseForBackendRateLimitAsync();
        }
        if (BackendHeld)
        {
            // Held by BackendPerConnection: the idle wait lasts until the bucket has room; the read then scans the held bytes.
            return buffer.IsEmpty ? WaitForBackendHoldAsync(cancellationToken) : ReadBackendCoreAsync(buffer, cancellationToken);
        }
        return buffer.IsEmpty ? BackendZeroByteReadAsync(cancellationToken) : ReadBackendCoreAsync(buffer, cancellationToken);
    }

    /// <summary>
    /// Nothing but the backend's data (or its end) can end the loop's idle wait: nothing held or read ahead, no violation
    /// or rate-limit close to act on. The loop then waits on the backend's stream itself (<see cref="PumpAsync"/>).
    /// </summary>
    private bool BackendWaitIsPlain =>
        !_backendReadEnded && !_backendViolation && !_backendRateLimitClose && !BackendHeld && _backendHeld.ReadAhead is null;

    /// <summary>
    /// The loop's idle wait on the backend (no buffer held) while a read the hold left pending must end first (otherwise
    /// the loop waits on the stream itself): a failure here is the backend's end too.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> BackendZeroByteReadAsync(CancellationToken cancellationToken)
    {
        if (_backendHeld.ReadAhead is not null)
        {
            // A read the hold left pending ends first; bytes it took are queued as held, and the loop's read takes them there.
            var ahead = await FinishBackendReadAheadAsync(cancellationToken).ConfigureAwait(false);
            if (ahead >= 0)
            {
                return 0; // ended, or now held: the loop's next read takes them
            }
        }
        try
        {
            await _backend!.ReadAsync(Memory<byte>.Empty, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsPeerFailure(ex, cancellationToken))
        {
            return await OnBackendReadEndedAsync(ex, cancellationToken).ConfigureAwait(false);
        }
        return 0;
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> ReadBackendCoreAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        if (buffer.Length <= WebSocketFrame.MaxHeaderLength + 2)
        {
            throw new ArgumentException("the relay needs read buffers longer than a frame header", nameof(buffer));
        }
        while (true)
        {
            int filled, read;
            if (BackendHeld)
            {
                // Held by a rate limit: nothing more is read from the backend until these bytes are scanned again.
                await WaitOutHoldAsync(fromClient: false, cancellationToken).ConfigureAwait(false);
                if (_backendReadEnded)
                {
                    return 0;
                }
                _backendResumedAt = _backendHeld.ResumeAt;
                filled = TakeCarry(_backendCarry, ref _backendCarryLength, buffer.Span); // read-ahead bytes may continue a split header
                filled += TakeHeld(ref _backendHeld, buffer.Span[filled..]);
                read = 0;
            }
            else
            {
                if (_backendHeld.ReadAhead is not null)
                {
                    // A read the hold left pending ends first; bytes it took are queued as held, and the loop's read takes them there.
                    var ahead = await FinishBackendReadAheadAsync(cancellationToken).ConfigureAwait(false);
                    if (ahead == 0)
                    {
                        return 0;
                    }
                    if (ahead > 0)
                    {
                        continue; // now held: taken below
                    }
                }
                filled = TakeCarry(_backendCarry, ref _backendCarryLength, buffer.Span);
                try
                {
                    read = await _backend!.ReadAsync(buffer[filled..], cancellationToken).ConfigureAwait(false);
                }
                catch (Exception ex) when (IsPeerFailure(ex, cancellationToken))
                {
                    return await OnBackendReadEndedAsync(ex, cancellationToken).ConfigureAwait(false);
                }
                if (read == 0)
                {
                    return await OnBackendReadEndedAsync(null, cancellationToken).ConfigureAwait(false);
                }
            }

            Volatile.Write(ref _backendAlive.LastHeard, _sweeper.Now);
            _toClient.BeginRelay();
            var produced = Filter(ref _fromBackend, ref _backendAlive, RelayMetrics.Side.Backend, buffer.Span[..(filled + read)],
                ref _backendCarry, ref _backendCarryLength, ref _backendHeld, out var violation, out var pong);
            _backendResumedAt = 0;
            if (violation)
            {
                _backendViolation = true;
            }
            if (_fromBackend.CloseCode != 0)
            {
                Decide(RelayMetrics.ClosedBy.Backend, _fromBackend.CloseCode);
            }
            if (produced > 0)
            {
                return produced; // a violation after these bytes is acted on at the next read
            }
            if (pong > 0 && !violation)
            {
                // Only the pong to the gateway's ping: the loop gets it and its write drops it, and the loop then waits
                // with a zero-byte read again, holding no buffer while the tunnel is idle.
                _dropNextClientWrite = true;
                return pong;
            }
            _toClient.EndRelay(_fromBackend.AtFrameBoundary);
            if (_backendViolation)
            {
                return await CloseForBackendViolationAsync().ConfigureAwait(false);
            }
            if (_backendRateLimitClose)
            {
                return await CloseForBackendRateLimitAsync().ConfigureAwait(false);
            }
            // Only a swallowed pong, a dropped message or part of a header (or a hold): read (or wait) again.
        }
    }

    /// <summary>The loop's idle wait while a rate limit holds the backend.</summary>
    private async ValueTask<int> WaitForBackendHoldAsync(CancellationToken cancellationToken)
    {
        await WaitOutHoldAsync(fromClient: false, cancellationToken).ConfigureAwait(false);
        return 0;
    }

    /// <summary>
    /// The backend's connection ended (0) or failed (<paramref name="error"/>). After its Close, or once the gateway
    /// began closing, that is the expected end; otherwise the backend is lost, and its client hears so in a Close.
    /// A read that failed once the tunnel's own token was cancelled says nothing about the backend: the client's
    /// request was aborted (an HTTP/2 RST_STREAM, a vanished connection, the gateway cutting it), or the other loop
    /// failed, and the read was cancelled or its stream disposed under it. The client loop's read ends with the same
    /// cancellation and says what happened (<see cref="OnClientReadEndedAsync"/>), whichever loop sees it first.
    /// </summary>
    private async ValueTask<int> OnBackendReadEndedAsync(Exception? error, CancellationToken cancellationToken)
    {
        if (!_backendReadEnded && _fromBackend.CloseCode == 0 && !IsClosing
            && !(error is not null && cancellationToken.IsCancellationRequested))
        {
            await BackendLostAsync(error).ConfigureAwait(false);
        }
        _backendReadEnded = true;
        return 0;
    }

    /// <summary>Ends the loop's reading of the backend (a pending read fails and returns 0) and the backend connection.</summary>
    private void EndBackend()
    {
        _backendReadEnded = true;
        DisposeBackend();
    }

    internal void DisposeBackend()
    {
        if (Interlocked.Exchange(ref _backendDisposed, 1) == 0)
        {
            _backend?.Dispose();
        }
    }

    /// <summary>
    /// Finishes a read the hold left pending (<see cref="FinishReadAheadAsync"/>): -1 when it took nothing (read as usual),
    /// 0 when the backend ended (said so already), 1 when its bytes are queued as held.
    /// </summary>
    private async ValueTask<int> FinishBackendReadAheadAsync(CancellationToken cancellationToken)
    {
        int ahead;
        try
        {
            ahead = await FinishReadAheadAsync(fromClient: false).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsPeerFailure(ex, cancellationToken))
        {
            await OnBackendReadEndedAsync(ex, cancellationToken).ConfigureAwait(false);
            return 0;
        }
        if (ahead == 0)
        {
            await OnBackendReadEndedAsync(null, cancellationToken).ConfigureAwait(false);
            return 0;
        }
        return ahead < 0 ? -1 : 1;
    }
}
