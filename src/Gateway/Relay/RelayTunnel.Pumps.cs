using System.Buffers;
using System.Runtime.CompilerServices;

namespace Gateway.Relay;

// After the 101 the tunnel is the relay's alone: one loop per direction moves bytes between the client's upgraded stream
// and the backend's connection, through the read and write paths (scanning, pongs swallowed, gates for the gateway's own
// frames). What an idle tunnel then holds is its two streams and this object: no request and response messages, no
// copy loops of YARP's, no activity timer reset on every read and write.
internal sealed partial class RelayTunnel
{
    /// <summary>
    /// Each direction's read buffer, rented only while bytes flow (an idle direction waits with a zero-byte read and holds
    /// none). 16 KiB: a full TLS record, and four of Kestrel's pipe blocks; YARP's loops rented 64 KiB.
    /// </summary>
    private const int PumpBufferLength = 16 * 1024;

    /// <summary>What YARP's forwarder would use when a cluster sets no <c>HttpRequest:ActivityTimeout</c>.</summary>
    private static readonly TimeSpan DefaultActivityTimeout = TimeSpan.FromSeconds(100);

    private long _activityTimeoutMs;
    private bool _flushBackend;

    /// <summary>
    /// Relays until both directions have ended, as YARP's forwarder did: the first to fail cancels the other; when the
    /// backend's side ends first the client's pending read is cancelled (nothing more can reach the backend); when the
    /// client's ends first the backend still delivers its answer (its Close) until it hangs up or the close grace ends.
    /// </summary>
    /// <param name="activityTimeout">The cluster's <c>HttpRequest:ActivityTimeout</c>: no frame from either peer for
    /// this long ends the tunnel with a Close 1001, which YARP's loops did by cutting both connections.</param>
    internal async ValueTask RelayAsync(TimeSpan? activityTimeout)
    {
        var timeout = activityTimeout ?? DefaultActivityTimeout;
        Volatile.Write(ref _activityTimeoutMs, timeout > TimeSpan.Zero ? Math.Max(1, (long)timeout.TotalMilliseconds) : 0);
        // The client gone cancels the client's read only: the backend's read goes on until the backend answers the
        // Close the client's loss sends it (or the close grace ends). On an HTTP/2 stream a cancelled read is a reset
        // (RST_STREAM, RFC 9113 section 6.4), which would discard that Close before the backend read it.
        using var cancel = new CancellationTokenSource();
        using var cancelClient = CancellationTokenSource.CreateLinkedTokenSource(cancel.Token, _clientGone);
        try
        {
            var toBackend = PumpAsync(fromClient: true, cancelClient.Token);
            var toClient = PumpAsync(fromClient: false, cancel.Token);
            var first = await Task.WhenAny(toBackend, toClient).ConfigureAwait(false);
            var second = first == toBackend ? toClient : toBackend;
            // A client closed for what it sent is still read until it answers (CloseForClientViolationAsync), within the
            // close grace: the backend's end must not cut that short.
            if (first.Result is not null || (first == toClient && !second.IsCompleted && !_clientLingering))
            {
                cancel.Cancel();
            }
            await second.ConfigureAwait(false);
            // Peers that fail are the tunnel's outcome already (Decide); only what no path turned into one is logged here.
            if ((Unexpected(toBackend.Result, cancelClient.Token) ?? Unexpected(toClient.Result, cancel.Token)) is { } failure)
            {
                Log.RelayFailed(_logger, RouteId, failure);
            }
        }
        finally
        {
            _client!.Dispose();
            DisposeBackend();
        }
    }

    /// <summary>A failure the read and write paths did not already turn into the tunnel's end (a bug, not a peer).</summary>
    private static Exception? Unexpected(Exception? error, CancellationToken cancel) =>
        error is null || error is OperationCanceledException && cancel.IsCancellationRequested ? null : error;

    /// <summary>
    /// One direction: a zero-byte read while idle (no buffer held), then a read into a pooled buffer, then the write of
    /// what the read path let through. Ends when the read path says the direction is over (0); returns what it threw.
    /// </summary>
    private async Task<Exception?> PumpAsync(bool fromClient, CancellationToken cancellationToken)
    {
        byte[]? buffer = null;
        try
        {
            while (true)
            {
                // The idle wait. In the usual state only data (or the end) can end it, and the loop waits on the stream
                // itself: the stream's completion resumes this loop with no method of the tunnel's in between, which at
                // chat rates (every message a wake-up) is one async frame and one pooled box less per message.
                var direct = fromClient ? ClientWaitIsPlain : BackendWaitIsPlain;
                var wait = direct
                    ? (fromClient ? _client! : _backend!).ReadAsync(Memory<byte>.Empty, cancellationToken)
                    : fromClient ? ReadFromClientAsync(Memory<byte>.Empty, cancellationToken) : ReadFromBackendAsync(Memory<byte>.Empty, cancellationToken);
                int woke;
                if (wait.IsCompletedSuccessfully)
                {
                    woke = wait.Result;
                }
                else
                {
                    if (buffer is not null)
                    {
                        ArrayPool<byte>.Shared.Return(buffer);
                        buffer = null;
                    }
                    try
                    {
                        woke = await wait.ConfigureAwait(false);
                    }
                    catch (Exception ex) when (direct && IsPeerFailure(ex, cancellationToken))
                    {
                        // What the tunnel's own wait does with a peer's failure: the direction ends, and says why.
                        _ = fromClient ? await OnClientReadEndedAsync(ex).ConfigureAwait(false) : await OnBackendReadEndedAsync(ex, cancellationToken).ConfigureAwait(false);
                        return null;
                    }
                }
                if (woke == NothingYet)
                {
                    continue; // only a pong to the gateway's ping came
                }
                if (direct && fromClient && Volatile.Read(ref _clientAlive.Outstanding))
                {
                    // A ping went out during the wait, and what woke it may be the pong: the tunnel's own wait reads it
                    // into a small buffer (ZeroByteReadAsync) rather than the loop's 16 KiB one.
                    continue;
                }
                buffer ??= ArrayPool<byte>.Shared.Rent(PumpBufferLength);
                var read = fromClient
                    ? await ReadFromClientAsync(buffer, cancellationToken).ConfigureAwait(false)
                    : await ReadFromBackendAsync(buffer, cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    return null;
                }
                if (fromClient)
                {
                    await WriteToBackendAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
                    if (_flushBackend)
                    {
                        await FlushBackendAsync(cancellationToken).ConfigureAwait(false);
                    }
                }
                else
                {
                    await WriteToClientAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
                }
            }
        }
        catch (Exception ex)
        {
            return ex;
        }
        finally
        {
            if (buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }
    }

    /// <summary>From the sweep: no frame from either peer for the activity timeout.</summary>
    private bool IsInactive(long now)
    {
        var timeout = Volatile.Read(ref _activityTimeoutMs);
        if (timeout == 0 || ClientHeld || BackendHeld)
        {
            return false;
        }
        var last = Math.Max(Volatile.Read(ref _clientAlive.LastHeard), Volatile.Read(ref _backendAlive.LastHeard));
        return now - last >= timeout;
    }
}
