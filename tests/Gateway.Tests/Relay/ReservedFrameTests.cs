using System.Text.Json.Nodes;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Relay;

/// <summary>Through the real gateway: RSV bits and opcodes a client may not use, and the close code it sends.</summary>
[Collection(SerialCollection.Name)]
public sealed class ReservedFrameTests
{
    private static JsonObject Policy() => RelayConfig.KeepAlive("00:00:30", "00:00:10");

    /// <summary>Each frame on the lean HTTP/1.1 path and on Kestrel's: the tunnel forwarder serves both.</summary>
    public static TheoryData<string, byte, int, bool> Frames()
    {
        var both = new TheoryData<string, byte, int, bool>();
        foreach (var (what, opcode, rsv) in FrameCases)
        {
            both.Add(what, opcode, rsv, true);
            both.Add(what, opcode, rsv, false);
        }
        return both;
    }

    private static readonly (string, byte, int)[] FrameCases =
    [
        ("RSV2 on a text frame", RawFrame.Text, 2),
        ("RSV3 on a binary frame", RawFrame.Binary, 1),
        ("RSV1 on a ping (RFC 7692 §6: never on control frames)", RawFrame.Ping, 4),
        ("reserved data opcode 0x3", 0x3, 0),
        ("reserved control opcode 0xB", 0xB, 0),
    ];

    [Theory]
    [MemberData(nameof(Frames))]
    public async Task A_client_frame_with_reserved_bits_or_opcode_fails_the_connection_with_1002(string what, byte opcode, int rsv, bool lean)
    {
        await using var backend = new RawBackend();
        await using var gateway = await GatewayServer.StartAsync(RelayConfig.Build(backend.Address, Policy(), lean: lean));
        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/reserved");
        await client.SendAsync(RawFrames.Encode(RawFrame.Text, "ok"u8));
        Assert.Equal("ok"u8.ToArray(), (await client.ReceiveAsync())!.Payload);

        await client.SendAsync(RawFrames.Encode(opcode, "bad"u8, rsv: rsv));

        var close = await client.ReceiveAsync(TimeSpan.FromSeconds(10));
        Assert.True(close is { Opcode: RawFrame.Close }, $"{what}: got {close}");
        Assert.Equal(1002, close.CloseCode);
        Assert.Equal(rsv != 0 ? "reserved bits set" : "reserved opcode", close.CloseReason);
        Assert.Equal(1001, (await backend.CloseReceived.Task.WaitAsync(TimeSpan.FromSeconds(10))).CloseCode);
        Assert.DoesNotContain(backend.Received, f => f.Payload.SequenceEqual("bad"u8.ToArray()));
        await client.Ended.WaitAsync(TimeSpan.FromSeconds(10));
        await Retry.Eventually(async () => Assert.Equal(1, (await MetricsScrape.FetchAsync(gateway)).Value(
            "gateway_websocket_connections_closed_total", ("closed_by", "gateway_limit"), ("code", "1002"))), TimeSpan.FromSeconds(10));
    }

    [Theory]
    [InlineData(1001, "1001")]
    [InlineData(4999, "other")] // an application's code: no series of its own
    public async Task A_close_code_sent_after_its_header_is_counted_with_its_label(ushort code, string label)
    {
        await using var backend = new RawBackend();
        await using var gateway = await GatewayServer.StartAsync(RelayConfig.Build(backend.Address, Policy()));
        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/late-code");

        // The header and the code in separate writes, spaced so that the gateway reads them separately.
        var close = RawFrames.CloseFrame(code, "bye");
        await client.SendAsync(close[..6]);
        await Task.Delay(200);
        await client.SendAsync(close[6..]);

        Assert.Equal(code, (await backend.CloseReceived.Task.WaitAsync(TimeSpan.FromSeconds(10))).CloseCode);
        Assert.Equal(code, (await client.ReceiveAsync(TimeSpan.FromSeconds(10)))!.CloseCode);
        await client.Ended.WaitAsync(TimeSpan.FromSeconds(10));
        var scrape = await Retry.Eventually(async () =>
        {
            var s = await MetricsScrape.FetchAsync(gateway);
            Assert.Equal(1, s.Value("gateway_websocket_connections_closed_total"));
            return s;
        }, TimeSpan.FromSeconds(10));
        Assert.Equal(1, scrape.Value("gateway_websocket_connections_closed_total", ("closed_by", "client"), ("code", label)));
    }
}
