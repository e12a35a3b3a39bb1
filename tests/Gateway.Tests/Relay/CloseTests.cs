using System.Runtime.ExceptionServices;
using System.Text;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Relay;

[Collection(SerialCollection.Name)]
public sealed class CloseTests
{
    [Theory]
    [InlineData(true, false)]
    [InlineData(false, false)]
    [InlineData(true, true)]
    public async Task A_clean_close_ends_the_tunnel_without_cancelling_anything(bool lean, bool socketTakeover)
    {
        // After the client's Close the relay ends the client-to-backend copy itself; YARP then sees the backend hang
        // up with the other direction already done and has nothing to cancel. A cancellation unwinds as a chain of
        // OperationCanceledExceptions through the stream layers (about five per tunnel): on a clean close, none.
        await using var backend = new RawBackend();
        await using var gateway = await GatewayServer.StartAsync(RelayConfig.Build(backend.Address, RelayConfig.KeepAlive("00:00:00", "00:00:01"), lean: lean,
            socketTakeover: socketTakeover));
        await OpenEchoCloseAsync(gateway, 0);

        var canceled = 0;
        void Count(object? sender, FirstChanceExceptionEventArgs e)
        {
            if (e.Exception is OperationCanceledException)
            {
                Interlocked.Increment(ref canceled);
            }
        }
        AppDomain.CurrentDomain.FirstChanceException += Count;
        try
        {
            for (var i = 1; i <= 20; i++)
            {
                await OpenEchoCloseAsync(gateway, i);
            }
        }
        finally
        {
            AppDomain.CurrentDomain.FirstChanceException -= Count;
        }

        // A socket taken over after the 101 costs one cancellation when it opens (the transport's idle zero-byte receive
        // is cancelled, which is how it gives the socket up untouched); its close cancels nothing either.
        Assert.InRange(canceled, 0, socketTakeover ? 20 : 0);
        var scrape = await Retry.Eventually(async () =>
        {
            var metrics = await MetricsScrape.FetchAsync(gateway);
            Assert.Equal(21, metrics.Value("gateway_websocket_connections_closed_total", ("closed_by", "client"), ("code", "1000")));
            return metrics;
        }, TimeSpan.FromSeconds(5));
        Assert.Equal(0, scrape.Value("gateway_proxy_errors_total"));
    }

    private static async Task OpenEchoCloseAsync(GatewayServer gateway, int i)
    {
        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, $"/raw/close{i}");
        await client.SendAsync(RawFrames.Encode(RawFrame.Text, "bye soon"u8));
        Assert.Equal("bye soon", Encoding.UTF8.GetString((await client.ReceiveAsync())!.Payload));
        await client.SendAsync(RawFrames.CloseFrame(1000, "done"));
        var close = await client.ReceiveAsync();
        Assert.Equal(RawFrame.Close, close!.Opcode);
        // The gateway closes the client connection once the backend has hung up: the tunnel is over.
        var ended = await Task.WhenAny(client.Ended, Task.Delay(TimeSpan.FromSeconds(5)));
        Assert.Same(client.Ended, ended);
    }
}
