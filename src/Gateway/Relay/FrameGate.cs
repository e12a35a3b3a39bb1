namespace Gateway.Relay;

/// <summary>
/// Who may write to one peer: the relay's loop, relaying what it read from the other peer, or the gateway, injecting
/// a frame of its own (a ping, a Close). The gateway may write only where the peer has received whole frames
/// (RFC 6455 §5.4: control frames may come between the fragments of a message, never inside a frame), never while
/// the loop writes, and nothing at all once a Close went to the peer, relayed or its own (§5.5.1: the Close is the
/// last frame an endpoint sends). Both wait by awaiting, never by polling.
/// </summary>
/// <remarks>
/// The relay's loop is read, write, read: bytes it read are written before it reads again. <see cref="BeginRelay"/> marks
/// the moment a read returned bytes for this peer (before they are scanned); <see cref="EndRelay"/> the moment they
/// were all written, saying whether the peer is then at a frame boundary. Between the two, and while the last write
/// ended inside a frame, the gate is busy.
/// Everything is one word of state changed by interlocked operations. Uncontended, a relayed write costs two of them
/// and an injection (a keepalive ping into an idle tunnel, every interval on every tunnel) three, and neither allocates:
/// a task to wait on is made only when someone has to wait (an injection that meets the loop's write, a Close that
/// waits for a frame boundary), which is rare.
/// Written by hand: no framework primitive waits for "idle and at a frame boundary".
/// </remarks>
internal sealed class FrameGate
{
    private const int Busy = 1;            // relayed bytes not yet all written, or the last write ended inside a frame
    private const int Injecting = 2;       // the gateway is writing a frame of its own
    private const int BoundaryWaited = 4;  // the holder waits for the busy bit to clear
    private const int Abandoned = 8;       // the tunnel is over: injectors stop waiting
    private const int Held = 16;           // one injector holds the right to inject (waiting for a boundary, or writing)
    private const int ReleaseWaited = 32;  // someone waits for the holder to finish (another injector, the loop's write)
    private const int Closed = 64;         // a Close went to the peer: nothing of the gateway's own follows it

    private int _state;
    private TaskCompletionSource? _released;        // made by the first to wait for the holder; completed when it exits
    private TaskCompletionSource<bool>? _boundary;  // completed when the busy bit clears (or the gate is abandoned)

    /// <summary>A Close has gone (or is going) to the peer.</summary>
    public bool IsClosed => (Volatile.Read(ref _state) & Closed) != 0;

    /// <summary>The loop has bytes for the peer not yet written, or the peer is inside a frame (for tests).</summary>
    internal bool IsBusy => (Volatile.Read(ref _state) & Busy) != 0;

    /// <summary>A read returned bytes that the loop will write to this peer.</summary>
    public void BeginRelay() => Interlocked.Or(ref _state, Busy);

    /// <summary>Before the loop writes: waits while the gateway is writing a frame of its own.</summary>
    public ValueTask EnterRelayWriteAsync() =>
        (Volatile.Read(ref _state) & Injecting) == 0 ? default : WaitForInjectorAsync();

    private async ValueTask WaitForInjectorAsync()
    {
        // No injection can begin while the loop's pending write keeps the gate busy: once the bit clears it stays clear.
        while (true)
        {
            var released = ReleaseSignal();
            if ((Volatile.Read(ref _state) & Injecting) == 0)
            {
                return;
            }
            await released.ConfigureAwait(false);
        }
    }

    /// <summary>All relayed bytes were written (or there were none to write); the peer is at a frame boundary or not.</summary>
    public void EndRelay(bool atFrameBoundary)
    {
        if (!atFrameBoundary)
        {
            return;
        }
        var previous = Interlocked.And(ref _state, ~Busy);
        if ((previous & BoundaryWaited) != 0)
        {
            Volatile.Read(ref _boundary)?.TrySetResult(true);
        }
    }

    /// <summary>
    /// A Close is going to the peer: the loop relays one (called while the gate is busy with it, so no injection can
    /// come between) or the gateway writes its own (called while it holds the gate). Injections after it are refused.
    /// </summary>
    public void MarkClosed()
    {
        if ((Interlocked.Or(ref _state, Closed) & BoundaryWaited) != 0)
        {
            Volatile.Read(ref _boundary)?.TrySetResult(false);
        }
    }

    /// <summary>
    /// Takes the right to write one frame of the gateway's own, or says it cannot (false) as <paramref name="wait"/>
    /// allows: a ping gives up at once when the moment is wrong and tries again at the next sweep; a Close waits for
    /// another injector, and for the next frame boundary if asked, until the gate is abandoned or closed. The caller
    /// that gets true must call <see cref="ExitInjection"/>.
    /// </summary>
    public ValueTask<bool> EnterInjectionAsync(InjectionWait wait)
    {
        // The moment is right (idle, at a boundary, nobody injecting): taken at once, nothing allocated.
        var state = Volatile.Read(ref _state);
        while ((state & (Held | Busy | Abandoned | Closed)) == 0)
        {
            var seen = Interlocked.CompareExchange(ref _state, state | Held | Injecting, state);
            if (seen == state)
            {
                return new ValueTask<bool>(true);
            }
            state = seen;
        }
        return wait == InjectionWait.None ? new ValueTask<bool>(false) : EnterSlowAsync(wait);
    }

    private async ValueTask<bool> EnterSlowAsync(InjectionWait wait)
    {
        // One injector at a time: take the hold, waiting for the holder to release it.
        while (true)
        {
            var state = Volatile.Read(ref _state);
            if ((state & (Abandoned | Closed)) != 0)
            {
                return false;
            }
            if ((state & Held) == 0)
            {
                if (Interlocked.CompareExchange(ref _state, state | Held, state) == state)
                {
                    break;
                }
                continue;
            }
            var released = ReleaseSignal();
            if ((Volatile.Read(ref _state) & (Held | Abandoned)) == Held)
            {
                await released.ConfigureAwait(false);
            }
        }

        while (true)
        {
            var state = Volatile.Read(ref _state);
            if ((state & (Abandoned | Closed)) != 0)
            {
                break;
            }
            if ((state & Busy) == 0)
            {
                if (Interlocked.CompareExchange(ref _state, (state | Injecting) & ~BoundaryWaited, state) == state)
                {
                    return true;
                }
                continue;
            }
            if (wait != InjectionWait.ForBoundary)
            {
                break;
            }
            // Publish what EndRelay completes before saying that someone waits, then look again: the busy bit may have
            // cleared in between, and then nobody would complete it.
            var boundary = new TaskCompletionSource<bool>(TaskCreationOptions.RunContinuationsAsynchronously);
            Volatile.Write(ref _boundary, boundary);
            Interlocked.Or(ref _state, BoundaryWaited);
            if ((Volatile.Read(ref _state) & (Busy | Abandoned | Closed)) == Busy)
            {
                await boundary.Task.ConfigureAwait(false);
            }
        }
        Release();
        return false;
    }

    /// <summary>The gateway's frame is written (or failed): the loop's writes and other injectors go on.</summary>
    public void ExitInjection() => Release();

    /// <summary>The tunnel is over: injectors waiting for a boundary or for another injector give up, and none waits again.</summary>
    public void Abandon()
    {
        Interlocked.Or(ref _state, Abandoned);
        Volatile.Read(ref _boundary)?.TrySetResult(false);
        Interlocked.Exchange(ref _released, null)?.TrySetResult();
    }

    private void Release()
    {
        var previous = Interlocked.And(ref _state, ~(Held | Injecting | BoundaryWaited | ReleaseWaited));
        if ((previous & ReleaseWaited) != 0)
        {
            Interlocked.Exchange(ref _released, null)?.TrySetResult();
        }
    }

    /// <summary>
    /// What completes when the holder exits, made on first need and shared by all who wait meanwhile. Published before
    /// the bit that asks for it is set, and the caller looks at the state again after: an exit in between either saw the
    /// bit (and completes it) or came before it (and the caller finds the gate free).
    /// </summary>
    private Task ReleaseSignal()
    {
        var signal = Volatile.Read(ref _released);
        if (signal is null)
        {
            var created = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            signal = Interlocked.CompareExchange(ref _released, created, null) ?? created;
        }
        Interlocked.Or(ref _state, ReleaseWaited);
        return signal.Task;
    }
}

/// <summary>How long an injection may wait for its moment.</summary>
internal enum InjectionWait : byte
{
    /// <summary>Not at all: write now or not (a ping).</summary>
    None,

    /// <summary>For another injection to finish, not for a frame boundary (the peer is known to be at one, or never will be).</summary>
    ForInjector,

    /// <summary>For another injection and for the next frame boundary (a Close while the loop relays).</summary>
    ForBoundary,
}
