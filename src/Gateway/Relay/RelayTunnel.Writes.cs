using System.Runtime.CompilerServices;

namespace Gateway.Relay;

// The write side of both directions: the loops' relayed writes and the gateway's own frames, each peer behind its gate.
// A peer that has had the gateway's Close gets nothing more (RFC 6455 §5.5.1); a write that fails because the peer is
// gone is dropped, and the read side of that peer sees the end and says what happened.
internal sealed partial class RelayTunnel
{
    // Nothing more is relayed to the peer (the gateway closed it, or it is gone).
    private volatile bool _stopRelayToClient;
    private volatile bool _stopRelayToBackend;

    // The gateway's Close went to the peer: no frame of the gateway's own follows it.
    private volatile bool _closeSentToClient;
    private volatile bool _closeSentToBackend;

    /// <summary>Since when a write to the peer has been pending (sweeper clock), 0 when none: a peer that stops reading.</summary>
    private long _clientWriteSince;
    private long _backendWriteSince;

    /// <summary>The gate in front of the client (for tests that step a race).</summary>
    internal FrameGate ClientGate => _toClient;

    // ---- Backend to client: the loop writes the backend's frames to the client through this ----

    private ValueTask WriteToClientAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        if (data.IsEmpty)
        {
            return default;
        }
        if (_stopRelayToClient || _dropNextClientWrite)
        {
            _dropNextClientWrite = false;
            _toClient.EndRelay(_fromBackend.AtFrameBoundary);
            return default;
        }
        return WriteToClientCoreAsync(data, cancellationToken);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask WriteToClientCoreAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        await _toClient.EnterRelayWriteAsync().ConfigureAwait(false);
        var now = _sweeper.Now;
        Volatile.Write(ref _clientWriteSince, now);
        try
        {
            if (!_stopRelayToClient)
            {
                if (_fromBackend.CloseCode != 0)
                {
                    // The backend's Close is in these bytes: after it the client gets nothing of the gateway's own (a
                    // drain, a lifetime end or an admin close racing it gives up at the gate instead of a second Close).
                    _toClient.MarkClosed();
                }
                await _client!.WriteAsync(data, cancellationToken).ConfigureAwait(false);
                Volatile.Write(ref _clientAlive.LastSent, now);
            }
        }
        catch (Exception ex) when (IsPeerFailure(ex, cancellationToken))
        {
            // The client is gone: its read side ends too (now, since the connection is aborted) and says so.
            _stopRelayToClient = true;
            AbortClient();
        }
        finally
        {
            Volatile.Write(ref _clientWriteSince, 0);
            _toClient.EndRelay(_fromBackend.AtFrameBoundary);
        }
    }

    // ---- Client to backend: the loop writes the client's frames to the backend through this ----

    private ValueTask WriteToBackendAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        if (data.IsEmpty)
        {
            return default;
        }
        if (_stopRelayToBackend || _backendReadEnded)
        {
            _toBackend.EndRelay(ClientSideAtBoundary);
            return default;
        }
        return WriteToBackendCoreAsync(data, cancellationToken);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private async ValueTask WriteToBackendCoreAsync(ReadOnlyMemory<byte> data, CancellationToken cancellationToken)
    {
        await _toBackend.EnterRelayWriteAsync().ConfigureAwait(false);
        var now = _sweeper.Now;
        Volatile.Write(ref _backendWriteSince, now);
        try
        {
            if (!_stopRelayToBackend)
            {
                if (_fromClient.CloseCode != 0)
                {
                    _toBackend.MarkClosed(); // the client's Close is in these bytes: the same for the backend
                }
                await _backend!.WriteAsync(data, cancellationToken).ConfigureAwait(false);
                Volatile.Write(ref _backendAlive.LastSent, now);
            }
        }
        catch (Exception ex) when (IsPeerFailure(ex, cancellationToken))
        {
            // The backend connection broke: its pending read fails too and reports the loss.
            _stopRelayToBackend = true;
            DisposeBackend();
        }
        finally
        {
            Volatile.Write(ref _backendWriteSince, 0);
            _toBackend.EndRelay(ClientSideAtBoundary);
        }
    }

    private Task FlushBackendAsync(CancellationToken cancellationToken) => _backend?.FlushAsync(cancellationToken) ?? Task.CompletedTask;

    /// <summary>The backend has been written whole frames: nothing the client sent is held in the tunnel for the loop.</summary>
    private bool ClientSideAtBoundary => _pendingLength == 0 && _fromClient.AtFrameBoundary;

    // ---- The gateway's own frames ----

    /// <summary>
    /// Writes a control frame of the gateway's own to one peer through its gate. A Close is the last frame that peer
    /// gets from the gateway (§5.5.1). Returns whether it was written.
    /// </summary>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<bool> InjectAsync(bool toBackend, ReadOnlyMemory<byte> frame, InjectionWait wait, bool isClose)
    {
        var gate = toBackend ? _toBackend : _toClient;
        if (!await gate.EnterInjectionAsync(wait).ConfigureAwait(false))
        {
            return false;
        }
        try
        {
            if (toBackend ? _closeSentToBackend || _backend is null : _closeSentToClient || _client is null)
            {
                return false;
            }
            var now = _sweeper.Now;
            Volatile.Write(ref toBackend ? ref _backendWriteSince : ref _clientWriteSince, now);
            if (isClose)
            {
                // Before the write: what the loop relays after this point is dropped, not written after the Close, and
                // no other injection follows it.
                gate.MarkClosed();
                if (toBackend)
                {
                    _stopRelayToBackend = _closeSentToBackend = true;
                }
                else
                {
                    _stopRelayToClient = _closeSentToClient = true;
                }
            }
            await (toBackend ? _backend! : _client!).WriteAsync(frame).ConfigureAwait(false);
            if (toBackend && _flushBackend)
            {
                // An HTTP/2 stream holds writes until flushed, and no relayed write may come to flush this one: a ping
                // to an idle backend, or the Close for a client that is gone, would wait there until the tunnel is cut.
                await FlushBackendAsync(CancellationToken.None).ConfigureAwait(false);
            }
            Volatile.Write(ref toBackend ? ref _backendAlive.LastSent : ref _clientAlive.LastSent, now);
            return true;
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or ObjectDisposedException or InvalidOperationException
            or System.Net.Sockets.SocketException)
        {
            return false; // the peer is gone; its read side reports it
        }
        finally
        {
            Volatile.Write(ref toBackend ? ref _backendWriteSince : ref _clientWriteSince, 0);
            gate.ExitInjection();
        }
    }
}
