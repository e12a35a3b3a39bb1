namespace Gateway.Relay;

/// <summary>
/// What YARP's forwarder copies once the relay has taken a tunnel over (both the client's upgraded stream and the
/// backend's 101 content): a read ends at once and a write goes nowhere, so its copy loops finish as soon as they
/// start and the forwarder returns, releasing its per-request state while the relay keeps the real connections.
/// </summary>
internal sealed class FinishedStream : Stream
{
    public static readonly FinishedStream Instance = new();

    private FinishedStream()
    {
    }

    public override bool CanRead => true;

    public override bool CanWrite => true;

    public override bool CanSeek => false;

    public override long Length => throw new NotSupportedException();

    public override long Position
    {
        get => throw new NotSupportedException();
        set => throw new NotSupportedException();
    }

    public override int Read(byte[] buffer, int offset, int count) => 0;

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => default;

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => Task.FromResult(0);

    public override void Write(byte[] buffer, int offset, int count)
    {
    }

    public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => default;

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => Task.CompletedTask;

    public override void Flush()
    {
    }

    public override Task FlushAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    // Shared by every tunnel: disposing it (YARP does, after its loops) changes nothing.
    protected override void Dispose(bool disposing)
    {
    }
}
