using Gateway.Tests.Relay;
using Gateway.Listeners;
using System.Buffers;
using System.IO.Pipelines;
using System.Text;
using Gateway.Relay;

namespace Gateway.Tests.Listeners;

/// <summary>
/// The relay's view of an upgraded HTTP/1.1 connection at Kestrel's transport pipe: the relay's idle wait (a zero-byte
/// read) must consume nothing, Kestrel's wake-up of its own reader at shutdown must not end the tunnel, and the client's
/// end must read as 0.
/// </summary>
public sealed class ClientTransportStreamTests
{
    private readonly Pipe _fromClient = new();
    private readonly Pipe _toClient = new();
    private readonly ClientTransportStream _stream;

    public ClientTransportStreamTests()
    {
        _stream = new ClientTransportStream(new DuplexPipe(_fromClient.Reader, _toClient.Writer));
    }

    [Fact]
    public async Task A_zero_byte_read_waits_for_data_and_consumes_none_of_it()
    {
        var wait = _stream.ReadAsync(Memory<byte>.Empty).AsTask();
        Assert.False(wait.IsCompleted);

        await _fromClient.Writer.WriteAsync("hello"u8.ToArray());
        Assert.Equal(0, await wait.WaitAsync(TimeSpan.FromSeconds(10)));

        var buffer = new byte[16];
        var read = await _stream.ReadAsync(buffer);
        Assert.Equal("hello", Encoding.ASCII.GetString(buffer, 0, read));
    }

    [Fact]
    public async Task A_read_takes_what_fits_and_leaves_the_rest_for_the_next()
    {
        await _fromClient.Writer.WriteAsync("abcdefgh"u8.ToArray());
        var buffer = new byte[3];

        Assert.Equal(3, await _stream.ReadAsync(buffer));
        Assert.Equal("abc", Encoding.ASCII.GetString(buffer));
        Assert.Equal(3, await _stream.ReadAsync(buffer));
        Assert.Equal("def", Encoding.ASCII.GetString(buffer));
        Assert.Equal(2, await _stream.ReadAsync(buffer));
        Assert.Equal("gh", Encoding.ASCII.GetString(buffer, 0, 2));
    }

    [Fact]
    public async Task Kestrels_wake_up_of_a_pending_read_does_not_end_it()
    {
        var buffer = new byte[16];
        var read = _stream.ReadAsync(buffer).AsTask();
        _fromClient.Reader.CancelPendingRead(); // what Kestrel's HTTP/1.1 connection does when the server starts to stop
        await Task.Delay(50);
        Assert.False(read.IsCompleted, "the read ended when Kestrel woke its reader");

        await _fromClient.Writer.WriteAsync("still here"u8.ToArray());
        var count = await read.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("still here", Encoding.ASCII.GetString(buffer, 0, count));
    }

    [Fact]
    public async Task A_wake_up_already_signalled_before_the_read_is_passed_over_too()
    {
        _fromClient.Reader.CancelPendingRead();
        await _fromClient.Writer.WriteAsync("x"u8.ToArray());

        var buffer = new byte[4];
        Assert.Equal(1, await _stream.ReadAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal((byte)'x', buffer[0]);
    }

    [Fact]
    public async Task The_clients_end_reads_as_zero_after_the_last_bytes()
    {
        await _fromClient.Writer.WriteAsync("last"u8.ToArray());
        await _fromClient.Writer.CompleteAsync();
        var buffer = new byte[16];

        Assert.Equal(4, await _stream.ReadAsync(buffer));
        Assert.Equal(0, await _stream.ReadAsync(Memory<byte>.Empty));
        Assert.Equal(0, await _stream.ReadAsync(buffer));
    }

    [Fact]
    public async Task A_cancelled_token_ends_a_pending_read_with_OperationCanceledException()
    {
        using var cancel = new CancellationTokenSource();
        var read = _stream.ReadAsync(new byte[16], cancel.Token).AsTask();
        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => read.WaitAsync(TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public async Task A_connection_reset_surfaces_as_the_transports_exception()
    {
        var read = _stream.ReadAsync(new byte[16]).AsTask();
        await _fromClient.Writer.CompleteAsync(new IOException("reset by peer"));
        var error = await Assert.ThrowsAsync<IOException>(() => read.WaitAsync(TimeSpan.FromSeconds(10)));
        Assert.Equal("reset by peer", error.Message);
    }

    [Fact]
    public async Task A_write_is_flushed_to_the_transport()
    {
        await _stream.WriteAsync("frame"u8.ToArray());

        var result = await _toClient.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("frame", Encoding.ASCII.GetString(result.Buffer.ToArray()));
        _toClient.Reader.AdvanceTo(result.Buffer.End);
    }

    [Fact]
    public async Task A_write_that_waits_for_the_client_completes_when_it_reads()
    {
        var small = new Pipe(new PipeOptions(pauseWriterThreshold: 8, resumeWriterThreshold: 4));
        var stream = new ClientTransportStream(new DuplexPipe(_fromClient.Reader, small.Writer));

        var write = stream.WriteAsync(new byte[64]).AsTask();
        Assert.False(write.IsCompleted, "a write past the pipe's threshold should wait for the reader");
        var result = await small.Reader.ReadAsync();
        small.Reader.AdvanceTo(result.Buffer.End);
        await write.WaitAsync(TimeSpan.FromSeconds(10));
    }

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input => input;

        public PipeWriter Output => output;
    }
}
