using System.Buffers;
using System.IO.Pipelines;

namespace Gateway.Listeners.Takeover;

/// <summary>
/// The connection's input as the layers above it hold it (Kestrel's TLS captures the transport's reader once, when its
/// handshake starts): first the receive loop's pipe, then, once the connection goes direct, a reader of the socket itself.
/// The switch happens while nobody reads (between the 101 and the tunnel's first read), so no read spans it.
/// </summary>
internal sealed class SwitchablePipeReader(PipeReader inner) : PipeReader
{
    private PipeReader _inner = inner;

    public void SwitchTo(PipeReader next) => _inner = next;

    public override bool TryRead(out ReadResult result) => _inner.TryRead(out result);

    public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default) => _inner.ReadAsync(cancellationToken);

    public override void AdvanceTo(SequencePosition consumed) => _inner.AdvanceTo(consumed);

    public override void AdvanceTo(SequencePosition consumed, SequencePosition examined) => _inner.AdvanceTo(consumed, examined);

    public override void CancelPendingRead() => _inner.CancelPendingRead();

    public override void Complete(Exception? exception = null) => _inner.Complete(exception);

    public override ValueTask CompleteAsync(Exception? exception = null) => _inner.CompleteAsync(exception);
}

/// <summary>The connection's output, switched as <see cref="SwitchablePipeReader"/> is: the send loop's pipe, then the socket.</summary>
internal sealed class SwitchablePipeWriter(PipeWriter inner) : PipeWriter
{
    private PipeWriter _inner = inner;

    public void SwitchTo(PipeWriter next) => _inner = next;

    public override void Advance(int bytes) => _inner.Advance(bytes);

    public override Memory<byte> GetMemory(int sizeHint = 0) => _inner.GetMemory(sizeHint);

    public override Span<byte> GetSpan(int sizeHint = 0) => _inner.GetSpan(sizeHint);

    public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default) => _inner.FlushAsync(cancellationToken);

    public override ValueTask<FlushResult> WriteAsync(ReadOnlyMemory<byte> source, CancellationToken cancellationToken = default) =>
        _inner.WriteAsync(source, cancellationToken);

    public override void CancelPendingFlush() => _inner.CancelPendingFlush();

    public override bool CanGetUnflushedBytes => _inner.CanGetUnflushedBytes;

    public override long UnflushedBytes => _inner.UnflushedBytes;

    public override void Complete(Exception? exception = null) => _inner.Complete(exception);

    public override ValueTask CompleteAsync(Exception? exception = null) => _inner.CompleteAsync(exception);
}

/// <summary>
/// What the application's reader holds once the socket was given away: the end of the input, for every connection at
/// once (stateless, so completing it changes nothing). It lets the connection drop the receive loop's pipe.
/// </summary>
internal sealed class EndedPipeReader : PipeReader
{
    public static readonly EndedPipeReader Instance = new();

    private static ReadResult End => new(ReadOnlySequence<byte>.Empty, isCanceled: false, isCompleted: true);

    public override bool TryRead(out ReadResult result)
    {
        result = End;
        return true;
    }

    public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default) => new(End);

    public override void AdvanceTo(SequencePosition consumed)
    {
    }

    public override void AdvanceTo(SequencePosition consumed, SequencePosition examined)
    {
    }

    public override void CancelPendingRead()
    {
    }

    public override void Complete(Exception? exception = null)
    {
    }
}

/// <summary>The application's writer once the socket was given away: nobody reads what it writes (as a pipe whose reader completed).</summary>
internal sealed class EndedPipeWriter : PipeWriter
{
    public static readonly EndedPipeWriter Instance = new();

    public override void Advance(int bytes)
    {
    }

    // Only a misbehaving writer gets here (nothing writes to a connection whose socket is the tunnel's): a fresh buffer
    // keeps writers apart.
    public override Memory<byte> GetMemory(int sizeHint = 0) => new byte[Math.Max(sizeHint, 256)];

    public override Span<byte> GetSpan(int sizeHint = 0) => GetMemory(sizeHint).Span;

    public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default) =>
        new(new FlushResult(isCanceled: false, isCompleted: true));

    public override void CancelPendingFlush()
    {
    }

    public override void Complete(Exception? exception = null)
    {
    }
}
