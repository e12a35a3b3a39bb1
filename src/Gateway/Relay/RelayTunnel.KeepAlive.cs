using System.Buffers;
using System.Security.Cryptography;

namespace Gateway.Relay;

// Keepalive, driven by the sweeper: pings into idle connections, pongs swallowed, silent or stalled peers given up on.
internal sealed partial class RelayTunnel
{
    private static readonly ulong PingSecret = BitConverter.ToUInt64(RandomNumberGenerator.GetBytes(8));

    // The keepalive timing of the tunnel's policy; read again when the policies reload (see RefreshKeepAlive).
    private bool _keepAlive;
    private bool _backendKeepAlive;
    private long _intervalMs;
    private long _pingAfterMs;
    private long _timeoutMs;
    private int _policyVersion;
    private long _lifetimeEndsAt = long.MaxValue;
    private long _tokenEndsAt = long.MaxValue;
    private PeerKeepAlive _clientAlive;
    private PeerKeepAlive _backendAlive;

    /// <summary>One sweep's look at the tunnel: a deadline to enforce, a peer to give up on, or a ping to send.</summary>
    internal void OnSweep(long now)
    {
        if (Volatile.Read(ref _completed) != 0)
        {
            return;
        }
        if (_sweeper.Policies.Version != _policyVersion)
        {
            RefreshKeepAlive();
        }
        if (IsClosing)
        {
            EnforceCloseDeadline(now);
            return;
        }
        if (now >= _lifetimeEndsAt)
        {
            Run(EndLifetimeAsync());
            return;
        }
        if (now >= _tokenEndsAt)
        {
            Run(EndExpiredTokenAsync());
            return;
        }
        if (IsInactive(now))
        {
            Run(EndInactiveAsync());
            return;
        }
        if (!_keepAlive)
        {
            return;
        }
        // A peer that stops reading first: while the loop waits to write to it, it cannot read the other peer, whose
        // pongs then go unread; that silence is not the other peer's fault.
        var clientWriteSince = Volatile.Read(ref _clientWriteSince);
        var backendWriteSince = Volatile.Read(ref _backendWriteSince);
        if (clientWriteSince != 0 && now - clientWriteSince >= _timeoutMs)
        {
            Run(ClientStalledAsync());
            return;
        }
        if (_backendKeepAlive && _backend is not null && backendWriteSince != 0 && now - backendWriteSince >= _timeoutMs)
        {
            Run(ReapBackendAsync("backend not reading"));
            return;
        }
        // A peer held by a rate limit is not read, so its pongs wait unread: that silence is the gateway's doing.
        if (backendWriteSince == 0 && !ClientHeld && _clientAlive.IsSilent(now, _timeoutMs))
        {
            Run(ReapClientAsync());
            return;
        }
        if (_backendKeepAlive && _backend is not null && clientWriteSince == 0 && !BackendHeld && _backendAlive.IsSilent(now, _timeoutMs))
        {
            Run(ReapBackendAsync("backend not responding"));
            return;
        }
        if (_clientAlive.IsPingDue(now, _pingAfterMs))
        {
            Run(PingAsync(toBackend: false, now));
        }
        if (_backendKeepAlive && _backend is not null && _backendAlive.IsPingDue(now, _pingAfterMs))
        {
            Run(PingAsync(toBackend: true, now));
        }
    }

    /// <summary>
    /// Sends a ping to one peer: unmasked toward the client, masked toward the backend (RFC 6455 §5.3), between the
    /// loop's writes and at a frame boundary. If the moment is wrong (the loop writing, mid-frame), the next sweep tries again.
    /// </summary>
    private async Task PingAsync(bool toBackend, long now)
    {
        if (Interlocked.Exchange(ref PeerOf(toBackend).Writing, 1) == 1)
        {
            return;
        }
        var frame = ArrayPool<byte>.Shared.Rent(WebSocketFrame.MaxControlFrameLength);
        try
        {
            var payload = (ulong)_sweeper.Time.GetTimestamp() ^ PingSecret;
            var length = WebSocketFrame.WritePing(frame, payload, masked: toBackend);
            PeerOf(toBackend).Arm(payload, now, _sweeper.Time.GetTimestamp());
            if (await InjectAsync(toBackend, frame.AsMemory(0, length), InjectionWait.None, isClose: false).ConfigureAwait(false))
            {
                _metrics.PingSent(toBackend ? RelayMetrics.Side.Backend : RelayMetrics.Side.Client);
            }
            else if (!IsClosing)
            {
                PeerOf(toBackend).Disarm();
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(frame);
            Volatile.Write(ref PeerOf(toBackend).Writing, 0);
        }
    }

    /// <summary>
    /// Takes the keepalive timing of the tunnel's policy (as it is now, or as it was when the handshake came): each tunnel
    /// pings up to a quarter of the interval early, at its own offset, so tunnels opened in one burst are not all pinged
    /// (and answered) in one sweep.
    /// </summary>
    private void SetKeepAlive(Policies.WebSocketPolicy policy)
    {
        var keepAlive = policy.Options.KeepAlive;
        _keepAlive = policy.KeepAliveEnabled;
        _backendKeepAlive = _keepAlive && keepAlive.Backend;
        _intervalMs = (long)keepAlive.Interval.TotalMilliseconds;
        _pingAfterMs = _intervalMs - (_intervalMs > 3 ? Random.Shared.NextInt64(_intervalMs / 4) : 0);
        _timeoutMs = (long)keepAlive.Timeout.TotalMilliseconds;
    }

    /// <summary>The policies reloaded: open tunnels keep their policy's other rules but follow its new keepalive timing.</summary>
    private void RefreshKeepAlive()
    {
        _policyVersion = _sweeper.Policies.Version;
        if (_sweeper.Policies.ByName(_handshake.Policy.Name) is { } current)
        {
            SetKeepAlive(current);
            if (_slot >= 0)
            {
                SetRateLimits(current); // new numbers apply to open tunnels from their next frame
            }
        }
    }

    /// <summary>A ping to that peer waits for its pong (for tests that step keepalive by hand).</summary>
    internal bool PingOutstanding(bool backend) => Volatile.Read(ref PeerOf(backend).Outstanding);

    private ref PeerKeepAlive PeerOf(bool backend) => ref backend ? ref _backendAlive : ref _clientAlive;

    private void OnPong(ref PeerKeepAlive peer, string side)
    {
        Volatile.Write(ref peer.Outstanding, false);
        _metrics.PongReceived(side, _sweeper.Time.GetElapsedTime(peer.SentTimestamp));
    }
}
