using Gateway.Relay;

namespace Gateway.Tests.Relay;

/// <summary>
/// The gate between the relay's loop and the gateway's own frames, driven step by step: each test calls the loop's and
/// the injectors' methods in one chosen order and checks, after every step, who may write. Nothing sleeps; a waiter
/// released by a step is awaited (its continuation runs on the pool), every other is checked not to have completed.
/// </summary>
public sealed class FrameGateTests
{
    private static readonly TimeSpan Within = TimeSpan.FromSeconds(5);

    /// <summary>An answer given without waiting (as a ping's always is).</summary>
    private static bool Now(ValueTask<bool> entered)
    {
        Assert.True(entered.IsCompletedSuccessfully, "answered at once");
        return entered.Result;
    }

    [Fact]
    public void An_idle_gate_at_a_frame_boundary_lets_a_ping_in_at_once()
    {
        var gate = new FrameGate();
        Assert.True(Now(gate.EnterInjectionAsync(InjectionWait.None)));
        Assert.False(Now(gate.EnterInjectionAsync(InjectionWait.None))); // one injector at a time
        gate.ExitInjection();
        Assert.True(Now(gate.EnterInjectionAsync(InjectionWait.None)));
    }

    [Fact]
    public async Task A_relayed_write_waits_for_the_gateways_frame_being_written()
    {
        var gate = new FrameGate();
        Assert.True(Now(gate.EnterInjectionAsync(InjectionWait.None)));
        gate.BeginRelay(); // the loop read bytes while the ping is written
        var write = gate.EnterRelayWriteAsync().AsTask();
        Assert.False(write.IsCompleted);
        gate.ExitInjection();
        await write.WaitAsync(Within);
        // While the loop writes, no ping gets in.
        Assert.False(Now(gate.EnterInjectionAsync(InjectionWait.None)));
        gate.EndRelay(atFrameBoundary: true);
        Assert.True(Now(gate.EnterInjectionAsync(InjectionWait.None)));
    }

    [Fact]
    public void A_ping_gives_up_while_the_loop_relays_and_while_the_peer_is_inside_a_frame()
    {
        var gate = new FrameGate();
        gate.BeginRelay();
        Assert.True(gate.EnterRelayWriteAsync().IsCompletedSuccessfully);
        Assert.False(Now(gate.EnterInjectionAsync(InjectionWait.None))); // the loop writes
        gate.EndRelay(atFrameBoundary: false);
        Assert.False(Now(gate.EnterInjectionAsync(InjectionWait.None))); // the last write ended inside a frame
        gate.BeginRelay();
        gate.EndRelay(atFrameBoundary: true);
        Assert.True(Now(gate.EnterInjectionAsync(InjectionWait.None))); // the frame's rest went: its end is a boundary
    }

    [Fact]
    public async Task A_close_arriving_mid_frame_waits_for_the_boundary_and_the_loop_then_waits_for_it()
    {
        var gate = new FrameGate();
        gate.BeginRelay();
        gate.EndRelay(atFrameBoundary: false); // half a frame is out
        var close = gate.EnterInjectionAsync(InjectionWait.ForBoundary).AsTask();
        Assert.False(close.IsCompleted);

        gate.BeginRelay();
        gate.EndRelay(atFrameBoundary: false); // more of the frame, still not its end
        Assert.False(close.IsCompleted);

        gate.BeginRelay();
        gate.EndRelay(atFrameBoundary: true); // the frame's end
        Assert.True(await close.WaitAsync(Within));

        // The loop's next bytes wait until the Close is written; a ping meanwhile gives up.
        gate.BeginRelay();
        var write = gate.EnterRelayWriteAsync().AsTask();
        Assert.False(write.IsCompleted);
        Assert.False(Now(gate.EnterInjectionAsync(InjectionWait.None)));
        gate.ExitInjection();
        await write.WaitAsync(Within);
    }

    [Fact]
    public async Task A_close_at_a_boundary_the_loop_is_about_to_leave_gets_in_before_the_loops_next_bytes()
    {
        var gate = new FrameGate();
        gate.BeginRelay(); // the loop read a whole frame and is about to write it
        var close = gate.EnterInjectionAsync(InjectionWait.ForBoundary).AsTask();
        Assert.True(gate.EnterRelayWriteAsync().IsCompletedSuccessfully); // the held close does not block the loop's write
        Assert.False(close.IsCompleted);
        gate.EndRelay(atFrameBoundary: true);
        Assert.True(await close.WaitAsync(Within));
        gate.ExitInjection();
    }

    [Fact]
    public async Task Injectors_take_turns_and_a_ping_never_waits_for_one()
    {
        var gate = new FrameGate();
        Assert.True(Now(gate.EnterInjectionAsync(InjectionWait.None))); // a ping is being written
        var first = gate.EnterInjectionAsync(InjectionWait.ForInjector).AsTask();
        var second = gate.EnterInjectionAsync(InjectionWait.ForBoundary).AsTask();
        Assert.False(first.IsCompleted);
        Assert.False(second.IsCompleted);
        Assert.False(Now(gate.EnterInjectionAsync(InjectionWait.None)));

        gate.ExitInjection();
        // One of the two gets the gate; the other waits for it.
        var winner = await Task.WhenAny(first, second).WaitAsync(Within);
        Assert.True(await winner);
        var other = winner == first ? second : first;
        Assert.False(other.IsCompleted);
        gate.ExitInjection();
        Assert.True(await other.WaitAsync(Within));
        gate.ExitInjection();
        Assert.True(Now(gate.EnterInjectionAsync(InjectionWait.None)));
    }

    [Fact]
    public async Task After_the_gateways_close_a_waiting_close_and_any_ping_are_refused()
    {
        var gate = new FrameGate();
        Assert.True(await gate.EnterInjectionAsync(InjectionWait.ForBoundary)); // the drain's Close
        var lifetime = gate.EnterInjectionAsync(InjectionWait.ForBoundary).AsTask(); // waits its turn
        Assert.False(lifetime.IsCompleted);
        gate.MarkClosed(); // the drain's Close is being written
        Assert.False(await gate.EnterInjectionAsync(InjectionWait.ForInjector)); // an admin close now: refused at once
        gate.ExitInjection();
        Assert.False(await lifetime.WaitAsync(Within));
        Assert.False(Now(gate.EnterInjectionAsync(InjectionWait.None)));
        Assert.False(await gate.EnterInjectionAsync(InjectionWait.ForInjector));
    }

    [Fact]
    public async Task A_close_racing_a_relayed_close_in_flight_is_not_sent_after_it()
    {
        // The loop read the peer's Close frame (half of it: the close code is in the next read) and wrote that much.
        var gate = new FrameGate();
        gate.BeginRelay();
        gate.EndRelay(atFrameBoundary: false);
        // A drain (or a lifetime end, or an admin close) wants to close now: it waits for the frame's end.
        var drain = gate.EnterInjectionAsync(InjectionWait.ForBoundary).AsTask();
        Assert.False(drain.IsCompleted);
        // The rest of the Close arrives: the write path sees a Close in its bytes and says so before writing them.
        gate.BeginRelay();
        gate.MarkClosed();
        // The mark wakes the drain to give up (its continuation runs on the thread pool, so it may already have): what it
        // must never do is take the gate.
        if (drain.IsCompleted)
        {
            Assert.False(await drain);
        }
        gate.EndRelay(atFrameBoundary: true);
        Assert.False(await drain.WaitAsync(Within)); // no second Close
        Assert.True(gate.IsClosed);
        Assert.False(Now(gate.EnterInjectionAsync(InjectionWait.None))); // nor a ping
    }

    [Fact]
    public async Task A_close_waiting_for_another_injector_gives_up_when_the_relayed_close_went_first()
    {
        var gate = new FrameGate();
        Assert.True(Now(gate.EnterInjectionAsync(InjectionWait.None))); // a ping is out
        var lifetime = gate.EnterInjectionAsync(InjectionWait.ForBoundary).AsTask();
        gate.BeginRelay(); // the peer's whole Close was read meanwhile
        var write = gate.EnterRelayWriteAsync().AsTask();
        gate.ExitInjection(); // the ping is written: the loop writes next, and the lifetime's close may hold the gate
        await write.WaitAsync(Within);
        gate.MarkClosed();
        gate.EndRelay(atFrameBoundary: true);
        Assert.False(await lifetime.WaitAsync(Within));
    }

    [Fact]
    public async Task Abandoning_the_gate_releases_every_waiter()
    {
        var gate = new FrameGate();
        gate.BeginRelay();
        gate.EndRelay(atFrameBoundary: false);
        var holder = gate.EnterInjectionAsync(InjectionWait.ForBoundary).AsTask(); // holds the gate, waits for a boundary
        var queued = gate.EnterInjectionAsync(InjectionWait.ForInjector).AsTask(); // waits for the holder
        Assert.False(holder.IsCompleted);
        Assert.False(queued.IsCompleted);
        gate.Abandon();
        Assert.False(await holder.WaitAsync(Within));
        Assert.False(await queued.WaitAsync(Within));
        Assert.False(await gate.EnterInjectionAsync(InjectionWait.ForBoundary));
    }
}
