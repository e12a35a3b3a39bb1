namespace Gateway.Relay;

/// <summary>
/// Who may write to one peer: the relay's loop, relaying what it read from the other peer, or the gateway, injecting
/// a frame of its own (a ping, a Close). The gateway may write only where the peer has received whole frames
/// (RFC 6455 §5.4: control frames may come between the fragments of a message, never inside a frame) and never
/// while the loop writes. Both wait by awaiting, never by polling.
/// </summary>
/// <remarks>
/// The relay's loop is read, write, read: bytes it read are written before it reads again. <see cref="BeginRelay"/> marks
/// the moment a read returned bytes for this peer (before they are scanned); <see cref="EndRelay"/> the moment they
/// were all written, saying whether the peer is then at a frame boundary. Between the two, and while the last write
/// ended inside a frame, the gate is busy. Uncontended, a relayed write costs two interlocked operations and allocates
/// nothing; an injection (rare: a ping per interval, a Close) allocates a task source or two.
/// Written by hand: no framework primitive waits for "idle and at a frame boundary".
/// </remarks>
internal sealed class FrameGate
{
    private const int Busy = 1;       // relayed bytes not yet all written, or the last write ended inside a frame
    private const int Injecting = 2;  // the gateway is writing a frame of its own
    private const int Waiting = 4;    // an injector waits for the busy bit to clear
    private const int Abandoned = 8;  // the tunnel is over: injectors stop waiting

    private int _state;
    private TaskCompletionSource? _injector;   // held by the one injector at a time; relay writes wait on it
    private TaskCompletionSource<bool>? _boundary; // completed when the busy bit clears (or the gate is abandoned)

    /// <summary>A read returned bytes that the loop will write to this peer.</summary>
    public void BeginRelay() => Interlocked.Or(ref _state, Busy);

    /// <summary>Before the loop writes: waits while the gateway is writing a frame of its own.</summary>
    public ValueTask EnterRelayWriteAsync() =>
        (Volatile.Read(ref _state) & Injecting) == 0 ? default : WaitForInjectorAsync();

    private async ValueTask WaitForInjectorAsync()
    {
        // The holder first, then the bit: an injection can begin only while the gate is not busy, and the loop's pending
        // write keeps it busy, so a holder read first and still injecting after is the one to wait for (a later holder
        // could only be waiting for this very write to end).
        while (Volatile.Read(ref _injector) is { } injector && (Volatile.Read(ref _state) & Injecting) != 0)
        {
            await injector.Task.ConfigureAwait(false);
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
        if ((previous & Waiting) != 0)
        {
            Volatile.Read(ref _boundary)?.TrySetResult(true);
        }
    }

    /// <summary>
    /// Takes the right to write one frame of the gateway's own, or says it cannot (false) as <paramref name="wait"/>
    /// allows: a ping gives up at once when the moment is wrong and tries again at the next sweep; a Close waits for
    /// another injector, and for the next frame boundary if asked, until the gate is abandoned. The caller that gets
    /// true must call <see cref="ExitInjection"/>.
    /// </summary>
    public async ValueTask<bool> EnterInjectionAsync(InjectionWait wait)
    {
        // One injector at a time: the holder's task source is what the others (and the loop's writes) wait on.
        var mine = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        while (Interlocked.CompareExchange(ref _injector, mine, null) is { } other)
        {
            if (wait == InjectionWait.None || (Volatile.Read(ref _state) & Abandoned) != 0)
            {
                return false;
            }
            await other.Task.ConfigureAwait(false);
        }

        while (true)
        {
            var state = Volatile.Read(ref _state);
            if ((state & Abandoned) != 0)
            {
                break;
            }
            if ((state & Busy) == 0)
            {
                if (Interlocked.CompareExchange(ref _state, (state | Injecting) & ~Waiting, state) == state)
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
            Interlocked.Or(ref _state, Waiting);
            if ((Volatile.Read(ref _state) & (Busy | Abandoned)) == Busy)
            {
                await boundary.Task.ConfigureAwait(false);
            }
        }
        Interlocked.And(ref _state, ~Waiting);
        Release(mine);
        return false;
    }

    /// <summary>The gateway's frame is written (or failed): the loop's writes and other injectors go on.</summary>
    public void ExitInjection()
    {
        Interlocked.And(ref _state, ~Injecting);
        Release(Volatile.Read(ref _injector)!);
    }

    /// <summary>The tunnel is over: injectors waiting for a boundary give up, and none waits again.</summary>
    public void Abandon()
    {
        Interlocked.Or(ref _state, Abandoned);
        Volatile.Read(ref _boundary)?.TrySetResult(false);
    }

    private void Release(TaskCompletionSource mine)
    {
        Volatile.Write(ref _injector, null);
        mine.TrySetResult();
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
