using Gateway.Relay;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Tests.Relay;

/// <summary>
/// A Close is the last frame a peer gets (RFC 6455 §5.5.1), whoever sent it: the gateway's own Close that races a
/// relayed one is dropped, on real sockets, with the race pinned down by the relayed Close arriving in two pieces.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class CloseRaceTests
{
    [Fact]
    public async Task A_drain_racing_the_backends_close_sends_the_client_no_second_close()
    {
        await using var backend = new RawBackend();
        await using var gateway = await GatewayServer.StartAsync(RelayConfig.Build(backend.Address, RelayConfig.KeepAlive("00:00:00", "00:00:15")));
        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/race");
        var sweeper = gateway.Services.GetRequiredService<KeepAliveSweeper>();
        await Retry.Eventually(() => Assert.Equal(1, sweeper.OpenTunnels), TimeSpan.FromSeconds(5));
        await Retry.Eventually(() => Assert.Equal(1, backend.Connections), TimeSpan.FromSeconds(5));
        var tunnel = sweeper.Snapshot()[0];
        backend.Responsive = false; // it sends its Close and nothing else, not even an answer to the gateway's

        // The backend's Close, first its header and half its code: the client is inside the Close frame now.
        var close = RawFrames.Encode(RawFrame.Close, [0x0F, 0xA0, .. "bye"u8], mask: false); // 4000 "bye"
        await backend.SendRawAsync(0, close[..3]);
        await Retry.Eventually(() => Assert.True(tunnel.ClientGate.IsBusy), TimeSpan.FromSeconds(5));

        // The drain begins: its Close to the client waits for the frame's end...
        tunnel.Drain();
        // ...which comes with the rest of the backend's Close.
        await backend.SendRawAsync(0, close[3..]);

        var first = await client.ReceiveAsync(TimeSpan.FromSeconds(5));
        Assert.True(first is { Opcode: RawFrame.Close, CloseCode: 4000 }, $"the client got {first?.ToString() ?? "nothing"}");
        Assert.Equal("bye", first!.CloseReason);
        // The drain's Close still went to the backend, which had not had one from the gateway.
        var toBackend = await Retry.Eventually(() => Task.FromResult(Assert.Single(backend.Received, f => f.Opcode == RawFrame.Close)), TimeSpan.FromSeconds(5));
        Assert.Equal(1001, toBackend.CloseCode);
        await client.SendAsync(RawFrames.CloseFrame(4000)); // the client answers, as it should
        await client.Ended.WaitAsync(TimeSpan.FromSeconds(10)); // the close grace ends the tunnel at the latest
        var after = await client.IdleAsync(TimeSpan.FromMilliseconds(100));
        Assert.True(after.Count == 0, $"after the backend's Close the client got {string.Join(", ", after)}");
    }
}
