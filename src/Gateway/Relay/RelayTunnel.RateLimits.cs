using System.Buffers;
using Gateway.Configuration;

namespace Gateway.Relay;

// Rate limits on data messages, both directions (the policy's RateLimits). Asked by the read paths' filter before each
// data frame, never for control frames: a ping, a pong or a Close is never charged and never starts a hold.
internal sealed partial class RelayTunnel
{
    /// <summary>
    /// What a held direction has read but not yet relayed: the held frame and whatever came after it. Bounded: the read it
    /// was held in (the loop's 16 KiB buffer) plus what is read ahead for control frames (RelayTunnel.HoldReadAhead.cs, up
    /// to <see cref="HoldReadAheadLimit"/>); beyond that nothing is read from that peer until the bucket has room, its
    /// further bytes wait in its socket and TCP's window stops it.
    /// </summary>
    private struct HeldInput
    {
        public byte[]? Buffer;
        public int Offset;
        public int Length;
        public long ResumeAt; // TimeProvider timestamp

        // Reading ahead for control frames while held (RelayTunnel.HoldReadAhead.cs): where the scan of whole frames goes on
        // (-1: the held bytes no longer start at a frame), a read still pending (a zero-byte one, or one into its buffer),
        // and whether to read no further.
        public long ScanFrom;
        public Task<int>? ReadAhead;
        public byte[]? ReadAheadBuffer;
        public bool ReadAheadStopped;
    }

    private TunnelRateLimits? _rateLimits;
    private HeldInput _clientHeld;
    private HeldInput _backendHeld;
    private volatile bool _backendRateLimitClose;

    // For the access line: what the limits did to this tunnel, and how often.
    private RateLimitAction _limitedAction;

    // While the filter scans bytes that were held: when their hold was due (0 otherwise).
    private long _clientResumedAt;
    private long _backendResumedAt;
    private long _limitedCount;

    private bool ClientHeld => Volatile.Read(ref _clientHeld.Length) > 0;

    private bool BackendHeld => Volatile.Read(ref _backendHeld.Length) > 0;

    /// <summary>The tunnel's limits, from its policy (null when the policy sets none: then nothing is asked per frame).</summary>
    private void SetRateLimits(Policies.WebSocketPolicy policy)
    {
        var settings = RateLimitSettings.For(policy);
        if (settings is null)
        {
            // A reload that turned the limits off: the buckets stay, unused (they are asked no more).
            _fromClient.AskBeforeData = false;
            _fromBackend.AskBeforeData = false;
            return;
        }
        if (_rateLimits is null)
        {
            var client = Handshake.ClientKey.From(_clientAddress, policy.Options.Limits.IPv6PrefixLength);
            _rateLimits = new TunnelRateLimits(settings, _sweeper.RateBuckets, _sweeper.Time, policy.Name, RouteId, client, _handshake.UserId);
        }
        else
        {
            _rateLimits.Update(settings);
        }
        _fromClient.AskBeforeData = settings.FromClientOn;
        _fromBackend.AskBeforeData = settings.Backend.IsOn;
    }

    /// <summary>
    /// The filter met a data frame: asks the limits of that direction. Returns what to do; for a hold, how long.
    /// </summary>
    private RateDecision AdmitData(bool fromClient, bool startsMessage, long payload, out double waitSeconds, out long judgedAt)
    {
        var limits = _rateLimits;
        if (limits is null)
        {
            waitSeconds = 0;
            judgedAt = 0;
            return RateDecision.Pass;
        }
        // Frames that were held are judged as of when their hold was due, not when the timer and the thread pool got round to
        // resuming them: a late resume would otherwise lose what the bucket earned meanwhile (it holds no more than its
        // burst), and a held client would be slowed below its rate by the timers' lateness, once per message.
        var due = fromClient ? _clientResumedAt : _backendResumedAt;
        var now = _sweeper.Time.GetTimestamp();
        if (due != 0 && due < now)
        {
            now = due;
        }
        judgedAt = now;
        var decision = fromClient ? limits.FromClient(startsMessage, payload, now, out waitSeconds) : limits.FromBackend(startsMessage, payload, now, out waitSeconds);
        if (decision != RateDecision.Pass)
        {
            var action = decision switch { RateDecision.Hold => RateLimitAction.Hold, RateDecision.Drop => RateLimitAction.Drop, _ => RateLimitAction.Close };
            _limitedAction = action;
            Interlocked.Increment(ref _limitedCount);
            _metrics.RateLimited(RouteId, fromClient, action);
        }
        return decision;
    }

    /// <summary>Keeps the unscanned rest of a read (from the held frame on) until <paramref name="waitSeconds"/> have passed.</summary>
    private static void Hold(ref HeldInput held, ReadOnlySpan<byte> rest, double waitSeconds, long judgedAt, long frequency)
    {
        var left = held.Length; // bytes still held from before, which come after these in the stream
        var buffer = ArrayPool<byte>.Shared.Rent(rest.Length + left);
        rest.CopyTo(buffer);
        if (left > 0)
        {
            held.Buffer.AsSpan(held.Offset, left).CopyTo(buffer.AsSpan(rest.Length));
            ArrayPool<byte>.Shared.Return(held.Buffer!);
        }
        held.Buffer = buffer;
        held.Offset = 0;
        held.ScanFrom = 0;
        held.ReadAheadStopped = false;
        // From when the refusal was judged (a resumed hold's due time), so that a backlog is let through on schedule.
        held.ResumeAt = judgedAt + (long)Math.Ceiling(Math.Max(waitSeconds, 0.001) * frequency);
        Volatile.Write(ref held.Length, rest.Length + left);
    }

    /// <summary>Moves held bytes to the start of <paramref name="destination"/>, as if they had just been read.</summary>
    private static int TakeHeld(ref HeldInput held, Span<byte> destination)
    {
        var count = Math.Min(destination.Length, held.Length);
        held.Buffer.AsSpan(held.Offset, count).CopyTo(destination);
        held.Offset += count;
        var left = held.Length - count;
        if (left == 0)
        {
            ArrayPool<byte>.Shared.Return(held.Buffer!);
            held.Buffer = null;
        }
        else
        {
            held.ScanFrom = -1; // the rest may start inside a frame: no scan for control frames in it
        }
        Volatile.Write(ref held.Length, left);
        return count;
    }

    private static void ReturnHeld(ref HeldInput held)
    {
        if (Interlocked.Exchange(ref held.ReadAhead, null) is { } pending)
        {
            // The tunnel ended with a read of the held peer pending: it ends with the connection, and its buffer goes back
            // to the pool only then (the read may still write into it).
            var readBuffer = Interlocked.Exchange(ref held.ReadAheadBuffer, null);
            pending.ContinueWith(static (t, state) =>
            {
                _ = t.Exception;
                if (state is byte[] taken)
                {
                    ArrayPool<byte>.Shared.Return(taken);
                }
            }, readBuffer, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        }
        if (Interlocked.Exchange(ref held.Buffer, null) is { } buffer)
        {
            held.Length = 0;
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    /// <summary>What the access line says: the action and how many frames it was taken on; null when never limited.</summary>
    private string? RateLimitedField()
    {
        var count = Interlocked.Read(ref _limitedCount);
        return count == 0 ? null : _limitedAction switch
        {
            RateLimitAction.Close => "close",
            RateLimitAction.Hold => $"hold:{count}",
            _ => $"drop:{count}",
        };
    }

    /// <summary>
    /// The backend went over <c>BackendPerConnection</c> with <c>Action</c> <c>Close</c>: it hears 1008, its client 1001
    /// (the gateway closed a healthy backend's tunnel by policy: not a fault that passive health should hear of).
    /// </summary>
    private async ValueTask<int> CloseForBackendRateLimitAsync()
    {
        if (BeginClosing())
        {
            Decide(RelayMetrics.ClosedBy.GatewayLimit, 1008);
            Log.RateLimitClosed(_logger, RouteId, "backend", 1008, 1001);
            await SendCloseAsync(toBackend: false, 1001, "backend closed by gateway", InjectionWait.ForBoundary).ConfigureAwait(false);
            await SendCloseAsync(toBackend: true, 1008, RateLimitReason, InjectionWait.ForBoundary).ConfigureAwait(false);
        }
        EndBackend();
        return 0;
    }

    private const string RateLimitReason = "rate limit exceeded";
}
