using Gateway.Lifecycle;
using Gateway.Admin;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Tests.Relay;

[Collection(SerialCollection.Name)]
public sealed class DrainTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Shutdown_closes_every_tunnel_with_1001_on_both_sides_and_turns_unready(bool lean)
    {
        await using var backend = new RawBackend();
        await using var gateway = await GatewayServer.StartAsync(RelayConfig.Build(backend.Address, RelayConfig.KeepAlive("00:00:30", "00:00:10"), lean: lean));
        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/drain");
        await client.SendAsync(RawFrames.Encode(RawFrame.Text, "before"u8));
        Assert.NotNull(await client.ReceiveAsync());
        var readiness = gateway.Services.GetRequiredService<Readiness>();
        Assert.True(readiness.IsReady);

        var stopping = gateway.StopAsync(TimeSpan.FromSeconds(10));

        var close = await client.ReceiveAsync(TimeSpan.FromSeconds(10));
        Assert.NotNull(close);
        Assert.Equal(RawFrame.Close, close.Opcode);
        Assert.Equal(1001, close.CloseCode);
        Assert.Equal("gateway shutting down", close.CloseReason);
        Assert.False(readiness.IsReady);
        // The client answers the Close as a browser would; the backend heard 1001 too.
        await client.SendAsync(RawFrames.CloseFrame(1001));
        Assert.Equal(1001, (await backend.CloseReceived.Task.WaitAsync(TimeSpan.FromSeconds(10))).CloseCode);
        await stopping.WaitAsync(TimeSpan.FromSeconds(15));
        await client.Ended.WaitAsync(TimeSpan.FromSeconds(5));
    }
}
