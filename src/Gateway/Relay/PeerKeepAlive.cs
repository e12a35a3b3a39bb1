namespace Gateway.Relay;

/// <summary>
/// One peer's keepalive state inside a tunnel: when the gateway last sent it something and heard from it, and the ping
/// it has not answered yet. Times are the sweeper's clock (<see cref="KeepAliveSweeper.Now"/>, milliseconds), written
/// by the relay's read and write paths and read by the sweep; the sweep decides from them alone.
/// </summary>
internal struct PeerKeepAlive
{
    /// <summary>When the gateway last wrote to the peer (relayed or its own frame).</summary>
    public long LastSent;

    /// <summary>When the peer last sent the gateway anything.</summary>
    public long LastHeard;

    /// <summary>A ping is out and its pong has not come.</summary>
    public bool Outstanding;

    /// <summary>The outstanding ping's payload; its pong carries the same (RFC 6455 §5.5.3).</summary>
    public ulong Payload;

    /// <summary>When the outstanding ping was sent, on the sweeper's clock and as a precise timestamp for the round trip.</summary>
    public long SentAt;
    public long SentTimestamp;

    /// <summary>1 while a ping is being written (a sweep does not start another).</summary>
    public int Writing;

    public void Start(long now) => LastSent = LastHeard = now;

    /// <summary>
    /// Nothing was sent toward the peer for <paramref name="pingAfter"/> and no ping waits for its pong. One ping at a
    /// time: a peer may answer only the latest of several pings (§5.5.2), and a pong to a ping the gateway no longer
    /// expects would reach the other side. A peer that is alive but ignores pings is still heard from by its traffic.
    /// </summary>
    public bool IsPingDue(long now, long pingAfter) =>
        !Volatile.Read(ref Outstanding) && now - Volatile.Read(ref LastSent) >= pingAfter;

    /// <summary>A ping is out and the peer has sent nothing at all for <paramref name="timeout"/> since it (or since its last bytes).</summary>
    public bool IsSilent(long now, long timeout) =>
        Volatile.Read(ref Outstanding) && now - Math.Max(SentAt, Volatile.Read(ref LastHeard)) >= timeout;

    /// <summary>Expect the pong before the ping leaves: a fast peer may answer before the write returns.</summary>
    public void Arm(ulong payload, long now, long timestamp)
    {
        Payload = payload;
        SentAt = now;
        SentTimestamp = timestamp;
        Volatile.Write(ref Outstanding, true);
    }

    /// <summary>The ping could not be written now: nothing is expected.</summary>
    public void Disarm() => Volatile.Write(ref Outstanding, false);
}
