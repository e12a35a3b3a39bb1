using System.Buffers;

namespace Gateway.Relay;

// How a tunnel ends. Who closed, with which code, and whether it counts against the backend is decided here, once
// (the first to decide wins); every close the gateway makes is a Close frame with a registered code (RFC 6455 §7.4.1),
// counted and logged. Whatever a client does may end its own tunnel and never counts against the backend.
internal sealed partial class RelayTunnel
{
    /// <summary>How long a close waits for the peers to finish, twice over, before it cuts both connections.</summary>
    private const long CloseGraceMs = 2000;

    /// <summary>How long a reaped client may take to accept its Close before its connection is cut.</summary>
    private static readonly TimeSpan GoodbyeWait = TimeSpan.FromMilliseconds(250);

    private int _closing;
    private readonly Lock _contextLock = new();
    private bool _contextReleased;
    private long _abortAt;

    // The outcome: 0 undecided, 1 being written, 2 decided (then the fields below are final).
    private int _outcome;
    private string? _closedBy;
    private ushort _closeCode;
    private bool _backendFault;

    private bool IsClosing => Volatile.Read(ref _closing) != 0;

    /// <summary>True when the tunnel ended through the backend's fault: passive health hears of it.</summary>
    internal bool EndedByBackendFault => Volatile.Read(ref _outcome) == 2 && _backendFault;

    /// <summary>True when the outcome was decided (by a Close frame or by the gateway), not left to how the connections ended.</summary>
    internal bool OutcomeDecided => Volatile.Read(ref _outcome) == 2;

    /// <summary>Records who ended the tunnel first and how; later calls change nothing.</summary>
    private bool Decide(string closedBy, ushort code, bool backendFault = false)
    {
        if (Interlocked.CompareExchange(ref _outcome, 1, 0) != 0)
        {
            return false;
        }
        _closedBy = closedBy;
        _closeCode = code;
        _backendFault = backendFault;
        Volatile.Write(ref _outcome, 2);
        return true;
    }

    /// <summary>The outcome for the metrics; without a decision the connection ended without a Close (1006, §7.1.5).</summary>
    private (string ClosedBy, ushort Code) Outcome()
    {
        var spin = new SpinWait();
        while (Volatile.Read(ref _outcome) == 1)
        {
            spin.SpinOnce();
        }
        return Volatile.Read(ref _outcome) == 2
            ? (_closedBy!, _closeCode)
            : (_clientReadEnded ? RelayMetrics.ClosedBy.Client : RelayMetrics.ClosedBy.Backend, (ushort)1006);
    }

    private bool BeginClosing()
    {
        if (Interlocked.Exchange(ref _closing, 1) != 0)
        {
            return false;
        }
        StartCloseDeadline();
        return true;
    }

    /// <summary>From now on the tunnel is ending: the sweep cuts both connections if it is not over within the grace.</summary>
    private void StartCloseDeadline()
    {
        Volatile.Write(ref _closing, 1);
        Interlocked.CompareExchange(ref _abortAt, _sweeper.Now + 2 * CloseGraceMs, 0);
    }

    private void EnforceCloseDeadline(long now)
    {
        var abortAt = Volatile.Read(ref _abortAt);
        if (abortAt != 0 && now >= abortAt && Interlocked.CompareExchange(ref _abortAt, -1, abortAt) == abortAt)
        {
            _toClient.Abandon();
            _toBackend.Abandon();
            EndBackend();
            AbortClient();
        }
    }

    /// <summary>
    /// Cuts the client's connection, but only while the request is still running: the sweep and the admin API act on
    /// their own threads, a close they began may end after the tunnel completed, and by then the request's
    /// <c>HttpContext</c> may be finished and pooled for another request (an HTTP/2 connection reuses its streams').
    /// <see cref="Complete"/> takes the same lock, so no abort can run after it.
    /// </summary>
    internal void AbortClient()
    {
        lock (_contextLock)
        {
            if (!_contextReleased)
            {
                if (_clientOwnsSocket)
                {
                    // The transport let go of the socket: closing it ends the pending read and write at once.
                    _client!.Dispose();
                }
                else if (_request is { } request)
                {
                    request.Abort();
                }
                else
                {
                    _connection?.Abort();
                }
            }
        }
    }

    // ---- The client's doing ----

    /// <summary>
    /// Runs inside the loop's read of the client: the client hears what it did wrong, the backend a Close 1001. Then the
    /// client's bytes are read and dropped until its answering Close (or its end, or the close grace): a client in the
    /// middle of a burst is still sending, and a connection closed with its bytes unread is reset, which destroys the
    /// gateway's Close before the client reads it (a browser then reports 1006). RFC 6455 §7.1.1: the server closes
    /// the TCP connection after the closing handshake.
    /// </summary>
    private async ValueTask<int> CloseForClientViolationAsync(CancellationToken cancellationToken)
    {
        if (_clientReadEnded)
        {
            return 0;
        }
        _clientLingering = true;
        if (BeginClosing())
        {
            var code = _fromClient.ViolationCode;
            var reason = _fromClient.ViolationReason ?? "protocol error";
            Decide(RelayMetrics.ClosedBy.GatewayLimit, code);
            if (code == 1008)
            {
                Log.RateLimitClosed(_logger, RouteId, "client", code, 1001);
            }
            else
            {
                Log.ClientViolation(_logger, RouteId, reason, code, 1001);
            }
            // The client's Close first: after it nothing more reaches the client, so the backend's answer to its own
            // Close (next) cannot overtake the code that says what the client did wrong. The offending frame never
            // reached the backend, which hears a normal goodbye and stays healthy.
            await SendCloseAsync(toBackend: false, code, reason, InjectionWait.ForBoundary).ConfigureAwait(false);
            await SendCloseAsync(toBackend: true, 1001, "client closed by gateway", InjectionWait.ForBoundary).ConfigureAwait(false);
        }
        try
        {
            await LingerForClientCloseAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _clientReadEnded = true;
        }
        return 0;
    }

    // After a violation: the client's frames from the refused one on, passed over until its Close.
    private CloseSeeker _clientLinger;
    private volatile bool _clientLingering;

    private void SeekClientClose(string side, ReadOnlySpan<byte> rest)
    {
        if (ReferenceEquals(side, RelayMetrics.Side.Client))
        {
            _clientLinger.Feed(rest);
        }
    }

    private async ValueTask LingerForClientCloseAsync(CancellationToken cancellationToken)
    {
        // What the tunnel already read past the refused frame comes first: a read ahead still pending, then held bytes.
        if (_clientHeld.ReadAhead is not null)
        {
            try
            {
                await FinishReadAheadAsync(fromClient: true).ConfigureAwait(false);
            }
            catch (Exception ex) when (IsPeerFailure(ex, cancellationToken))
            {
                return;
            }
        }
        if (_clientHeld.Length > 0)
        {
            _clientLinger.Feed(_clientHeld.Buffer.AsSpan(_clientHeld.Offset, _clientHeld.Length));
            ReturnHeld(ref _clientHeld);
        }
        if (_clientLinger.SawClose)
        {
            return;
        }
        // Until the client's Close, its end, or a quiet spell: a client that stopped sending has nothing unread left to
        // reset the connection with, and one that has not answered by then has read the Close it was sent. The close
        // grace bounds a client that never stops. The buffer is the tunnel's own, not pooled: a read still pending when
        // the quiet spell ends may write into it until the connection is closed (violations are rare).
        var buffer = new byte[LingerReadLength];
        try
        {
            while (true)
            {
                var read = _client!.ReadAsync(buffer, cancellationToken).AsTask();
                if (await Task.WhenAny(read, Task.Delay(LingerQuiet, _sweeper.Time, CancellationToken.None)).ConfigureAwait(false) != read)
                {
                    _ = read.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
                    return;
                }
                var count = await read.ConfigureAwait(false);
                if (count == 0 || _clientLinger.Feed(buffer.AsSpan(0, count)))
                {
                    return;
                }
            }
        }
        catch (Exception ex) when (IsPeerFailure(ex, cancellationToken))
        {
            // Gone, or cut at the close grace: either way nothing is left to wait for.
        }
    }

    /// <summary>How long a closed client may stay silent before its connection is closed without its answer.</summary>
    private static readonly TimeSpan LingerQuiet = TimeSpan.FromMilliseconds(250);

    /// <summary>What one read of a closed client's leftovers takes (they are dropped).</summary>
    private const int LingerReadLength = 2048;

    /// <summary>The client's connection ended or broke without a Close: the backend hears 1001 in its place.</summary>
    private async Task ClientLostAsync(Exception? error)
    {
        if (!BeginClosing())
        {
            return;
        }
        Decide(RelayMetrics.ClosedBy.Client, 1006);
        Log.ClientLost(_logger, RouteId, error?.Message ?? "connection closed");
        _stopRelayToClient = true;
        // The loop is inside its read of the client, so it writes nothing to the backend: the backend is at a frame boundary
        // unless the client vanished in the middle of a frame, and then no Close can follow; the connection just ends.
        if (!await SendCloseAsync(toBackend: true, 1001, "client went away", InjectionWait.ForInjector).ConfigureAwait(false))
        {
            EndBackend();
        }
    }

    /// <summary>Keepalive: the client sent nothing for the timeout after a ping.</summary>
    private async Task ReapClientAsync()
    {
        if (!BeginClosing())
        {
            return;
        }
        Decide(RelayMetrics.ClosedBy.GatewayReaped, 1001);
        _metrics.Reaped(RelayMetrics.Side.Client, RouteId);
        Log.ClientReaped(_logger, RouteId, 1001, 1001);
        // The backend's answer to its Close is not for a client that is gone (and would precede the client's own Close).
        _stopRelayToClient = true;
        await SendCloseAsync(toBackend: true, 1001, "client stopped responding", InjectionWait.ForBoundary).ConfigureAwait(false);
        // The client gets one too if its connection still takes it, but nobody waits long for a peer that is gone.
        var toClient = SendCloseAsync(toBackend: false, 1001, "ping timeout", InjectionWait.ForBoundary).AsTask();
        await Task.WhenAny(toClient, Task.Delay(GoodbyeWait, _sweeper.Time)).ConfigureAwait(false);
        AbortClient();
    }

    /// <summary>Bytes for the client stayed unsent for the timeout: it stopped reading. Its doing, not the backend's.</summary>
    private async Task ClientStalledAsync()
    {
        if (!BeginClosing())
        {
            return;
        }
        Decide(RelayMetrics.ClosedBy.ClientStalled, 1006);
        Log.ClientStalled(_logger, RouteId, _timeoutMs, 1001);
        _stopRelayToClient = true;
        await SendCloseAsync(toBackend: true, 1001, "client not reading", InjectionWait.ForBoundary).ConfigureAwait(false);
        // No Close can reach a client whose window is full: the connection is cut, which also ends the loop's pending write.
        AbortClient();
    }

    // ---- The backend's doing ----

    /// <summary>Runs inside the loop's read of the backend: the client hears 1014, the backend what it did wrong.</summary>
    private async ValueTask<int> CloseForBackendViolationAsync()
    {
        if (BeginClosing())
        {
            var reason = _fromBackend.ViolationReason ?? "protocol error";
            Decide(RelayMetrics.ClosedBy.GatewayLimit, 1014, backendFault: true);
            Log.BackendViolation(_logger, RouteId, reason, 1014, _fromBackend.ViolationCode);
            await SendCloseAsync(toBackend: false, 1014, "bad gateway: backend broke protocol", InjectionWait.ForBoundary).ConfigureAwait(false);
            await SendCloseAsync(toBackend: true, _fromBackend.ViolationCode, reason, InjectionWait.ForBoundary).ConfigureAwait(false);
        }
        EndBackend();
        return 0;
    }

    /// <summary>
    /// Runs inside the loop's read of the backend: its connection ended (FIN or RST) without a Close. The client hears
    /// 1014 (RFC 6455 §7.4.1, "bad gateway") at once instead of a bare TCP close it would report as 1006.
    /// </summary>
    private async Task BackendLostAsync(Exception? error)
    {
        if (!BeginClosing())
        {
            return;
        }
        Decide(RelayMetrics.ClosedBy.Backend, 1006, backendFault: true);
        Log.BackendLost(_logger, RouteId, error?.Message ?? "connection closed", 1014);
        _stopRelayToBackend = true;
        // The loop writes nothing to the client while it waits in this read: the client is at a frame boundary unless the
        // backend died in the middle of a frame, and then no Close can follow.
        await SendCloseAsync(toBackend: false, 1014, "backend connection lost", InjectionWait.ForInjector).ConfigureAwait(false);
    }

    /// <summary>Keepalive: the backend sent nothing for the timeout after a ping, or stopped reading.</summary>
    private async Task ReapBackendAsync(string why)
    {
        if (!BeginClosing())
        {
            return;
        }
        Decide(RelayMetrics.ClosedBy.GatewayReaped, 1011, backendFault: true);
        _metrics.Reaped(RelayMetrics.Side.Backend, RouteId);
        Log.BackendReaped(_logger, RouteId, why, 1011);
        await SendCloseAsync(toBackend: false, 1011, why, InjectionWait.ForBoundary).ConfigureAwait(false);
        // Ending the backend stream ends the backend-to-client loop; the tunnel then ends and the client
        // connection closes after the Close frame already written.
        EndBackend();
    }

    // ---- The gateway's doing ----

    /// <summary>The policy's <c>Limits:MaxLifetime</c> passed: both sides hear 1001 and the client reconnects, perhaps elsewhere.</summary>
    private async Task EndLifetimeAsync()
    {
        if (!BeginClosing())
        {
            return;
        }
        Decide(RelayMetrics.ClosedBy.MaxLifetime, 1001);
        Log.LifetimeEnded(_logger, RouteId, 1001);
        await SendCloseAsync(toBackend: false, 1001, "connection lifetime reached", InjectionWait.ForBoundary).ConfigureAwait(false);
        await SendCloseAsync(toBackend: true, 1001, "connection lifetime reached", InjectionWait.ForBoundary).ConfigureAwait(false);
    }

    /// <summary>
    /// The client's token expired (the policy's <c>Identity:OnExpiry</c> is <c>Close</c>): both sides hear 1008, policy
    /// violation (RFC 6455 §7.4.1), with the reason "token expired", so the client knows to get a new token and reconnect.
    /// </summary>
    private async Task EndExpiredTokenAsync()
    {
        if (!BeginClosing())
        {
            return;
        }
        Decide(RelayMetrics.ClosedBy.TokenExpired, 1008);
        Log.TokenExpired(_logger, RouteId, 1008);
        await SendCloseAsync(toBackend: false, 1008, "token expired", InjectionWait.ForBoundary).ConfigureAwait(false);
        await SendCloseAsync(toBackend: true, 1008, "token expired", InjectionWait.ForBoundary).ConfigureAwait(false);
    }

    /// <summary>
    /// Neither peer sent anything for the cluster's <c>HttpRequest:ActivityTimeout</c> (with keepalive on, a peer's pong
    /// counts): both hear 1001, where YARP's own timeout cut both connections without a Close.
    /// </summary>
    private async Task EndInactiveAsync()
    {
        if (!BeginClosing())
        {
            return;
        }
        Decide(RelayMetrics.ClosedBy.IdleTimeout, 1001);
        Log.IdleTimeout(_logger, RouteId, Volatile.Read(ref _activityTimeoutMs) / 1000.0, 1001);
        await SendCloseAsync(toBackend: false, 1001, "idle timeout", InjectionWait.ForBoundary).ConfigureAwait(false);
        await SendCloseAsync(toBackend: true, 1001, "idle timeout", InjectionWait.ForBoundary).ConfigureAwait(false);
    }

    /// <summary>Shutdown: both sides hear 1001 "going away" (RFC 6455 §7.4.1) instead of a cut connection.</summary>
    internal void Drain() => Run(DrainAsync());

    /// <summary>
    /// The tunnel's destination left the configuration (or is drained): both sides hear 1012 "service restart"
    /// (RFC 6455 §7.4.1, registered by IANA), which tells the client to reconnect, to a destination that remains.
    /// </summary>
    internal void Restart(string why) => Run(RestartAsync(why));

    private async Task RestartAsync(string why)
    {
        if (!BeginClosing())
        {
            return;
        }
        Decide(RelayMetrics.ClosedBy.DestinationRemoved, 1012);
        await SendCloseAsync(toBackend: false, 1012, why, InjectionWait.ForBoundary).ConfigureAwait(false);
        await SendCloseAsync(toBackend: true, 1012, why, InjectionWait.ForBoundary).ConfigureAwait(false);
    }

    private async Task DrainAsync()
    {
        if (!BeginClosing())
        {
            return;
        }
        Decide(RelayMetrics.ClosedBy.Drain, 1001);
        await SendCloseAsync(toBackend: false, 1001, "gateway shutting down", InjectionWait.ForBoundary).ConfigureAwait(false);
        await SendCloseAsync(toBackend: true, 1001, "gateway shutting down", InjectionWait.ForBoundary).ConfigureAwait(false);
    }

    private async ValueTask<bool> SendCloseAsync(bool toBackend, ushort code, string reason, InjectionWait wait)
    {
        var frame = ArrayPool<byte>.Shared.Rent(WebSocketFrame.MaxControlFrameLength);
        try
        {
            var length = WebSocketFrame.WriteClose(frame, code, reason, masked: toBackend);
            if (await InjectAsync(toBackend, frame.AsMemory(0, length), wait, isClose: true).ConfigureAwait(false))
            {
                _metrics.GatewayClose(toBackend ? RelayMetrics.Side.Backend : RelayMetrics.Side.Client, code, RouteId);
                return true;
            }
            return false;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(frame);
        }
    }

    /// <summary>Starts a close or a ping from the sweep and observes it: a failure is logged, never left unobserved.</summary>
    private void Run(Task task)
    {
        if (task.IsCompleted)
        {
            if (task.IsFaulted)
            {
                Log.BackgroundFailed(_logger, RouteId, task.Exception!);
            }
            return;
        }
        task.ContinueWith(static (t, state) => Log.BackgroundFailed(((RelayTunnel)state!)._logger, ((RelayTunnel)state!).RouteId, t.Exception!),
            this, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }
}
