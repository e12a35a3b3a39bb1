using System.Net;
using System.Net.Sockets;
using Gateway.Http;

namespace Gateway.Tests.Http;

/// <summary>A real loopback TCP pair: writes that go to the socket at once, and what happens when it cannot take them.</summary>
public sealed class DirectSocketStreamTests
{
    /// <param name="clientReceiveBuffer">Set before the connect: shrinking it on an open connection can stall Linux TCP.</param>
    private static async Task<(Socket Server, Socket Client)> ConnectedPairAsync(int clientReceiveBuffer = 0)
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        if (clientReceiveBuffer > 0)
        {
            client.ReceiveBufferSize = clientReceiveBuffer;
        }
        await client.ConnectAsync(listener.LocalEndPoint!);
        var server = await listener.AcceptAsync();
        return (server, client);
    }

    private static byte[] Pattern(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    [Fact]
    public async Task Writes_arrive_whole_and_in_order_when_the_reader_lags_far_behind()
    {
        // Small buffers on both ends so the sends soon find the socket full and the rest goes the asynchronous way.
        var (server, client) = await ConnectedPairAsync(clientReceiveBuffer: 8192);
        using var reader = client;
        server.SendBufferSize = 4096;
        await using var stream = new DirectSocketStream(server, ownsSocket: true);

        var chunks = Enumerable.Range(0, 64).Select(i => Pattern(1000 + 997 * i % 50_000, i)).ToArray();
        var expected = chunks.SelectMany(c => c).ToArray();
        var writing = Task.Run(async () =>
        {
            foreach (var chunk in chunks)
            {
                await stream.WriteAsync(chunk);
            }
        });
        // Nothing is read until the writer must have met a full socket (more than both buffers are queued).
        await Task.Delay(200);
        Assert.False(writing.IsCompleted, "the writer should be waiting for room");

        var received = new byte[expected.Length];
        var filled = 0;
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        while (filled < received.Length)
        {
            var read = await reader.ReceiveAsync(received.AsMemory(filled), SocketFlags.None, deadline.Token);
            Assert.NotEqual(0, read);
            filled += read;
        }
        await writing.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(expected, received);
    }

    [Fact]
    public async Task The_socket_is_non_blocking_and_a_small_write_completes_at_once()
    {
        var (server, client) = await ConnectedPairAsync();
        using var reader = client;
        await using var stream = new DirectSocketStream(server, ownsSocket: true);
        Assert.False(server.Blocking);

        var write = stream.WriteAsync(Pattern(512, 1));
        Assert.True(write.IsCompletedSuccessfully);
        var received = new byte[512];
        var filled = 0;
        while (filled < received.Length)
        {
            filled += await reader.ReceiveAsync(received.AsMemory(filled), SocketFlags.None);
        }
        Assert.Equal(Pattern(512, 1), received);
    }

    [Fact]
    public async Task A_write_to_a_peer_that_reset_fails_as_NetworkStream_reports_it()
    {
        var (server, client) = await ConnectedPairAsync();
        await using var stream = new DirectSocketStream(server, ownsSocket: true);
        client.LingerState = new LingerOption(true, 0); // close sends RST
        client.Dispose();
        await Task.Delay(100);

        var failure = await Assert.ThrowsAsync<IOException>(async () =>
        {
            // The first send after the RST may still be accepted by the kernel; the next one reports the reset.
            for (var i = 0; i < 10; i++)
            {
                await stream.WriteAsync(Pattern(1024, i));
                await Task.Delay(20);
            }
        });
        var socketError = Assert.IsType<SocketException>(failure.InnerException);
        Assert.True(socketError.SocketErrorCode is SocketError.ConnectionReset or SocketError.Shutdown or SocketError.ConnectionAborted,
            socketError.SocketErrorCode.ToString());
    }

    [Fact]
    public async Task A_write_after_dispose_throws_ObjectDisposedException()
    {
        var (server, client) = await ConnectedPairAsync();
        using var reader = client;
        var stream = new DirectSocketStream(server, ownsSocket: false);
        await stream.DisposeAsync();
        await Assert.ThrowsAsync<ObjectDisposedException>(async () => await stream.WriteAsync(Pattern(16, 1)));
        server.Dispose();
    }
}
