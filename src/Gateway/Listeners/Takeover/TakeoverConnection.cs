using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;

namespace Gateway.Listeners.Takeover;

/// <summary>
/// One accepted connection of the gateway's own socket transport: to Kestrel it looks like one of its own (two pipes, a
/// receive loop and a send loop; <c>.Loops.cs</c>), and its features are served by the connection itself
/// (<c>.Features.cs</c>). Unlike Kestrel's, the relay may take its socket away after a 101 (<see cref="ISocketTakeover"/>):
/// the loops stop, the pipes are dropped, and the socket is the tunnel's to read, write and close. Under TLS, which Kestrel
/// layers over the connection's pipes, the connection goes direct instead (<see cref="ISocketTakeover.GoDirectAsync"/>):
/// the loops stop and the pipes TLS holds read and write the socket on the tunnel's own calls.
/// </summary>
internal sealed partial class TakeoverConnection : ConnectionContext, IDuplexPipe, ISocketTakeover
{
    // The transport's state; whoever moves it out of Running first decides whether the socket is closed here or given away.
    private const int Running = 0;
    private const int TakingOver = 1;
    private const int TakenOver = 2;
    private const int Ended = 3;
    private const int Direct = 4;

    // Where the receive loop is (_loopAt): parked in its idle zero-byte receive, or anywhere else.
    private const int LoopBusy = 0;
    private const int LoopParked = 1;

    /// <summary>What a taken-over connection offers anyone who still looks at its transport: an ended input, a closed output.</summary>
    private static readonly IDuplexPipe Detached = new DetachedPipe(EndedPipeReader.Instance, EndedPipeWriter.Instance);

    private Socket? _socket;
    private Pipe? _input;   // the socket's bytes, for the application
    private Pipe? _output;  // the application's bytes, for the socket
    private readonly SwitchablePipeReader _reader; // what the application holds as the input: the pipe's, then the socket's
    private readonly SwitchablePipeWriter _writer;
    private IDuplexPipe _transport;
    private readonly CancellationTokenSource _closed = new();
    private Task? _receiving;
    private Task? _sending;
    private int _state;
    private int _loopAt;
    private int _abortRequested;
    private int _socketClosed;

    public TakeoverConnection(Socket socket, MemoryPool<byte> pool, PipeOptions inputOptions, PipeOptions outputOptions)
    {
        _socket = socket;
        _pool = pool;
        _input = new Pipe(inputOptions);
        _output = new Pipe(outputOptions);
        _reader = new SwitchablePipeReader(_input.Reader);
        _writer = new SwitchablePipeWriter(_output.Writer);
        _transport = this;
        _localEndPoint = socket.LocalEndPoint;
        _remoteEndPoint = socket.RemoteEndPoint;
        _closedToken = _closed.Token;
    }

    public void Start()
    {
        // The receive loop's reads after a wake must not wait (see ReceiveLoopAsync); the socket is made blocking again
        // before anyone else reads it (NetworkStream requires it).
        _socket!.Blocking = false;
        _receiving = ReceiveLoopAsync();
        _sending = SendLoopAsync();
    }

    public override IDuplexPipe Transport
    {
        get => _transport;
        set => _transport = value;
    }

    PipeReader IDuplexPipe.Input => _reader;

    PipeWriter IDuplexPipe.Output => _writer;

    public async ValueTask<(Stream Client, int Buffered)?> TakeOverAsync()
    {
        // A transport someone layered (TLS) carries other bytes than the socket's: such a connection is never given away.
        if (!ReferenceEquals(_transport, this) || Interlocked.CompareExchange(ref _state, TakingOver, Running) != Running)
        {
            return null;
        }
        var (buffered, lastReceive) = await StopLoopsAsync().ConfigureAwait(false);
        var socket = _socket!;
        // Nothing of the transport stays reachable from the connection while the tunnel relays (the pipes held by the
        // application's reader and writer included).
        _socket = null;
        _transport = Detached;
        _reader.SwitchTo(EndedPipeReader.Instance);
        _writer.SwitchTo(EndedPipeWriter.Instance);
        Interlocked.Exchange(ref _state, TakenOver);
        if (Volatile.Read(ref _abortRequested) != 0)
        {
            FireClosed();
        }
        Stream taken = new TakenSocketStream(socket, ownsSocket: true, lastReceive);
        return (buffered.Length == 0 ? taken : new Http.PrefixedStream(buffered, taken), buffered.Length);
    }

    public async ValueTask<bool> GoDirectAsync()
    {
        // Only under a layer (TLS): a plain connection's socket is given away whole (TakeOverAsync).
        if (ReferenceEquals(_transport, this) || Interlocked.CompareExchange(ref _state, TakingOver, Running) != Running)
        {
            return false;
        }
        var (buffered, lastReceive) = await StopLoopsAsync().ConfigureAwait(false);
        // Reads and writes go to the socket on the caller's own call, through TLS's pipes: no loop, no hand-off, and idle
        // holds no buffer (zero-byte reads down to the socket). Bytes the loop had received and TLS not read come first.
        var socket = new TakenSocketStream(_socket!, ownsSocket: false, lastReceive);
        Stream source = buffered.Length == 0 ? socket : new Http.PrefixedStream(buffered, socket);
        _reader.SwitchTo(PipeReader.Create(source, new StreamPipeReaderOptions(_pool, DirectBufferSize, DirectBufferSize / 4, leaveOpen: true, useZeroByteReads: true)));
        _writer.SwitchTo(PipeWriter.Create(socket, new StreamPipeWriterOptions(_pool, DirectBufferSize, leaveOpen: true)));
        Interlocked.Exchange(ref _state, Direct);
        if (Volatile.Read(ref _abortRequested) != 0)
        {
            CloseSocket();
            FireClosed();
        }
        return true;
    }

    /// <summary>Direct reads and writes use buffers of the pool's block size (Kestrel's pool: 4 KiB).</summary>
    private const int DirectBufferSize = 4096;

    /// <summary>
    /// Stops both loops without closing the socket and drops their pipes; returns what the receive loop had taken from the
    /// socket and nobody read (a first frame sent in the same segment as the handshake), and, when the loop was parked in
    /// its idle zero-byte receive, the loop itself: it ends when that receive does, and the socket's next reader waits
    /// for it.
    /// </summary>
    private async ValueTask<(byte[] Buffered, Task? LastReceive)> StopLoopsAsync()
    {
        var input = _input!;
        var output = _output!;
        // The send loop writes what was flushed (the 101), sees the end and stops without touching the socket.
        output.Writer.Complete();
        await _sending!.ConfigureAwait(false);
        // The state left Running before this read (a full fence): a loop seen parked stops when its receive ends, without
        // receiving anything. A loop seen busy stops before it parks again (a flush waiting for room returns at once); the
        // bytes it took are in the input pipe and handed over below.
        Task? lastReceive = null;
        if (Volatile.Read(ref _loopAt) == LoopParked)
        {
            lastReceive = _receiving;
        }
        else
        {
            input.Writer.CancelPendingFlush();
            await _receiving!.ConfigureAwait(false);
        }

        _socket!.Blocking = true;
        var buffered = Array.Empty<byte>();
        if (input.Reader.TryRead(out var result))
        {
            buffered = result.Buffer.ToArray();
            input.Reader.AdvanceTo(result.Buffer.End);
        }
        input.Reader.Complete();
        input.Writer.Complete();
        output.Reader.Complete();
        // Nothing of the loops stays reachable from the connection while the tunnel relays.
        _input = null;
        _output = null;
        _receiving = null;
        _sending = null;
        return (buffered, lastReceive);
    }

    public override void Abort(ConnectionAbortedException abortReason)
    {
        Interlocked.Exchange(ref _abortRequested, 1);
        if (Interlocked.CompareExchange(ref _state, Ended, Running) is Running or Ended)
        {
            // Kestrel's abort (a limit, the end of shutdown): the loops end on the closed socket.
            _output?.Reader.CancelPendingRead();
            CloseSocket();
        }
        else if (Volatile.Read(ref _state) == TakenOver)
        {
            // The socket is the tunnel's: the tunnel watches the closed token, ends and closes it.
            FireClosed();
        }
        else if (Volatile.Read(ref _state) == Direct)
        {
            // No loop is left to end: closing the socket fails the tunnel's pending read and write at once.
            CloseSocket();
            FireClosed();
        }
    }

    public override async ValueTask DisposeAsync()
    {
        if (Volatile.Read(ref _state) is TakingOver or TakenOver)
        {
            return;
        }
        if (Volatile.Read(ref _state) == Direct)
        {
            // Kestrel is done with the connection (its TLS layer completed the pipes, or will): the socket closes here.
            await _writer.CompleteAsync().ConfigureAwait(false);
            await _reader.CompleteAsync().ConfigureAwait(false);
            CloseSocket();
            return;
        }
        // As Kestrel's: the application's ends complete, the send loop writes what is left and closes the socket.
        _input?.Reader.Complete();
        _output?.Writer.Complete();
        if (_sending is { } sending)
        {
            await sending.ConfigureAwait(false);
        }
        if (_receiving is { } receiving)
        {
            await receiving.ConfigureAwait(false);
        }
    }

    /// <summary>Shuts the socket down and closes it, once, unless it was given away.</summary>
    private void CloseSocket()
    {
        if (Volatile.Read(ref _state) is TakingOver or TakenOver || Interlocked.Exchange(ref _socketClosed, 1) != 0 || _socket is not { } socket)
        {
            return;
        }
        try
        {
            socket.Shutdown(SocketShutdown.Both);
        }
        catch (SocketException)
        {
            // Already reset by the peer: closing is all that is left.
        }
        socket.Dispose();
    }

    /// <summary>ConnectionClosed, off the I/O thread: its callbacks are the application's (Kestrel does the same).</summary>
    private void FireClosed() =>
        ThreadPool.UnsafeQueueUserWorkItem(static connection => connection.CancelClosed(), this, preferLocal: false);

    private void CancelClosed()
    {
        try
        {
            _closed.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private sealed class DetachedPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input => input;

        public PipeWriter Output => output;
    }
}
