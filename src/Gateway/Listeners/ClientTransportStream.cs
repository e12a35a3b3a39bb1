using System.Buffers;
using System.IO.Pipelines;
using System.Runtime.CompilerServices;

namespace Gateway.Listeners;

/// <summary>
/// An upgraded HTTP/1.1 client connection read and written at Kestrel's transport pipe (TLS already removed), under its
/// HTTP/1.1 layer: once the 101 is sent, Kestrel's upgrade body, request stream, response stream and output producer
/// only pass bytes along, so the relay skips them. Kestrel still owns the connection and closes it when the request ends.
/// Hand-written because the framework's <c>PipeReader.AsStream</c>/<c>PipeWriter.AsStream</c> are one direction each
/// and allocate a state machine per read that does not complete at once.
/// </summary>
internal sealed class ClientTransportStream(IDuplexPipe transport) : Stream
{
    private readonly PipeReader _input = transport.Input;
    private readonly PipeWriter _output = transport.Output;

    public override bool CanRead => true;

    public override bool CanWrite => true;

    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        // Bytes already in the pipe: no state machine.
        if (_input.TryRead(out var result))
        {
            if (!result.IsCanceled)
            {
                return new ValueTask<int>(Take(result, buffer.Span));
            }
            _input.AdvanceTo(result.Buffer.Start);
        }
        return ReadSlowAsync(buffer, cancellationToken);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder<>))]
    private async ValueTask<int> ReadSlowAsync(Memory<byte> buffer, CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await _input.ReadAsync(cancellationToken).ConfigureAwait(false);
            if (!result.IsCanceled)
            {
                return Take(result, buffer.Span);
            }
            // Kestrel wakes its HTTP/1.1 reader this way when the server begins to stop (no more requests on the
            // connection); the tunnel is the relay's, and the drain ends it with a Close, so the read goes on. A
            // cancelled token throws from ReadAsync instead.
            _input.AdvanceTo(result.Buffer.Start);
        }
    }

    /// <summary>Copies what fits and consumes it; a zero-byte read consumes nothing, so the next read finds the bytes.</summary>
    private int Take(ReadResult result, Span<byte> destination)
    {
        var available = result.Buffer;
        if (available.IsEmpty)
        {
            _input.AdvanceTo(available.End);
            return 0; // completed: the client's end of the stream
        }
        var count = (int)Math.Min(available.Length, destination.Length);
        var taken = available.Slice(0, count);
        taken.CopyTo(destination);
        _input.AdvanceTo(taken.End);
        return count;
    }

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        var flush = _output.WriteAsync(buffer, cancellationToken);
        if (flush.IsCompletedSuccessfully)
        {
            ThrowIfCanceled(flush.Result);
            return default;
        }
        return AwaitFlushAsync(flush);
    }

    [AsyncMethodBuilder(typeof(PoolingAsyncValueTaskMethodBuilder))]
    private static async ValueTask AwaitFlushAsync(ValueTask<FlushResult> flush) => ThrowIfCanceled(await flush.ConfigureAwait(false));

    private static void ThrowIfCanceled(FlushResult result)
    {
        if (result.IsCanceled)
        {
            throw new OperationCanceledException("the write to the client's connection was cancelled");
        }
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public override void Flush()
    {
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException("the relay reads asynchronously");

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException("the relay writes asynchronously");

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();
}
