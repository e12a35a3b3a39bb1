using System.Runtime.CompilerServices;

namespace Gateway.Relay;

// The backend-to-client direction, read side: YARP reads the backend through the BackendStream, and gets only what
// goes on to the client (the gateway's pongs are swallowed, a split frame header is held back until it is whole).
public sealed partial class RelayTunnel
{
    private byte[]? _backendCarry;
    private int _backendCarryLength;
    private volatile bool _backendReadEnded;
    private volatile bool _backendViolation;
    private bool _dropNextClientWrite;
    private int _backendDisposed;

    internal ValueTask<int> ReadFromBackendAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        if (_backendReadEnded)
        {
            return new ValueTask<int>(0);
        }
        if (_backendViolation)
        {
            return CloseForBackendViolationAsync();
        }
        return buffer.IsEmpty ? BackendZeroByteReadAsync(cancellationToken) : ReadBackendCoreAsync(buffer, cancellationToken);
    }

    /// <summary>YARP's idle wait on the backend (no buffer held): a failure here is the backend's end too.</summary>
    /// <remarks>It waits for every message an idle tunnel receives, so its state machine comes from a pool.</remarks>
    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> BackendZeroByteReadAsync(CancellationToken cancellationToken)
    {
        try
        {
            await _backend!.ReadAsync(Memory<byte>.Empty, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception ex) when (IsPeerFailure(ex, cancellationToken))
        {
            return await OnBackendReadEndedAsync(ex).ConfigureAwait(false);
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
            var filled = TakeBackendCarry(buffer.Span);
            int read;
            try
            {
                read = await _backend!.ReadAsync(buffer[filled..], cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (IsPeerFailure(ex, cancellationToken))
            {
                return await OnBackendReadEndedAsync(ex).ConfigureAwait(false);
            }
            if (read == 0)
            {
                return await OnBackendReadEndedAsync(null).ConfigureAwait(false);
            }

            Volatile.Write(ref _backendAlive.LastHeard, _sweeper.Now);
            _toClient.BeginRelay();
            var produced = FilterFromBackend(buffer.Span[..(filled + read)]);
            if (_fromBackend.CloseCode != 0)
            {
                Decide(RelayMetrics.ClosedBy.Backend, _fromBackend.CloseCode);
            }
            if (produced > 0)
            {
                return produced; // a violation after these bytes is acted on at the next read
            }
            if (produced < 0)
            {
                // Only the pong to the gateway's ping: YARP gets it and its write drops it. YARP's ActivityTimeout
                // counts the bytes its loops move, so the backend's pongs keep it from cutting a healthy idle tunnel.
                _dropNextClientWrite = true;
                return -produced;
            }
            _toClient.EndRelay(_fromBackend.AtFrameBoundary);
            if (_backendViolation)
            {
                return await CloseForBackendViolationAsync().ConfigureAwait(false);
            }
            // Only a swallowed pong or part of a header: read again into the same buffer.
        }
    }

    /// <summary>
    /// Compacts <paramref name="data"/> in place: drops the gateway's pongs, holds back a split header. Returns the bytes
    /// that go on to the client, or minus the length of a pong that was all there was, at the start of the data.
    /// </summary>
    private int FilterFromBackend(Span<byte> data)
    {
        int read = 0, write = 0, pong = 0;
        var pongExpected = Volatile.Read(ref _backendAlive.Outstanding);
        var expected = _backendAlive.Payload;
        while (read < data.Length)
        {
            switch (_fromBackend.Scan(data[read..], pongExpected, expected, out var length))
            {
                case ScanResult.Pass:
                    if (write != read)
                    {
                        data.Slice(read, length).CopyTo(data[write..]);
                    }
                    write += length;
                    read += length;
                    break;
                case ScanResult.Swallow:
                    pong = write == 0 && read == 0 ? length : 0;
                    read += length;
                    pongExpected = false;
                    OnPong(ref _backendAlive, RelayMetrics.Side.Backend);
                    break;
                case ScanResult.NeedMore:
                    var rest = data[read..];
                    _backendCarry ??= new byte[WebSocketFrame.MaxHeaderLength + 2];
                    rest.CopyTo(_backendCarry);
                    _backendCarryLength = rest.Length;
                    read = data.Length;
                    break;
                case ScanResult.Violation:
                    _backendViolation = true;
                    read = data.Length;
                    break;
            }
        }
        return write == 0 && pong > 0 && !_backendViolation ? -pong : write;
    }

    private int TakeBackendCarry(Span<byte> destination)
    {
        var length = _backendCarryLength;
        if (length > 0)
        {
            _backendCarry.AsSpan(0, length).CopyTo(destination);
            _backendCarryLength = 0;
        }
        return length;
    }

    /// <summary>
    /// The backend's connection ended (0) or failed (<paramref name="error"/>). After its Close, or once the gateway
    /// began closing, that is the expected end; otherwise the backend is lost, and its client hears so in a Close.
    /// </summary>
    private async ValueTask<int> OnBackendReadEndedAsync(Exception? error)
    {
        if (!_backendReadEnded && _fromBackend.CloseCode == 0 && !IsClosing)
        {
            await BackendLostAsync(error).ConfigureAwait(false);
        }
        _backendReadEnded = true;
        return 0;
    }

    /// <summary>Ends YARP's reading of the backend (a pending read fails and returns 0) and the backend connection.</summary>
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
}
