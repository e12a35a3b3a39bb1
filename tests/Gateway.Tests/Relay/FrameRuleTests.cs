using System.Text.Json.Nodes;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Relay;

[Collection(SerialCollection.Name)]
public sealed class FrameRuleTests
{
    private static JsonObject Policy() => new()
    {
        ["KeepAlive"] = new JsonObject { ["Interval"] = "00:00:30", ["Timeout"] = "00:00:10" },
        ["Frames"] = new JsonObject { ["MaxMessageBytes"] = 1000, ["MaxFrameBytes"] = 800 },
    };

    /// <summary>Each violation on the lean HTTP/1.1 path and on Kestrel's: the tunnel forwarder serves both.</summary>
    public static TheoryData<string, ushort, bool> Violations()
    {
        var both = new TheoryData<string, ushort, bool>();
        foreach (var (violation, code) in ViolationCodes)
        {
            both.Add(violation, code, true);
            both.Add(violation, code, false);
        }
        return both;
    }

    private static readonly (string, ushort)[] ViolationCodes =
    [
        ("message-over-limit", 1009),
        ("frame-over-limit", 1009),
        ("unmasked-frame", 1002),
        ("control-frame-over-125", 1002),
        ("fragmented-control-frame", 1002),
    ];

    [Theory]
    [MemberData(nameof(Violations))]
    public async Task A_client_breaking_a_frame_rule_gets_the_right_close_and_the_backend_1001(string violation, ushort expectedCode, bool lean)
    {
        await using var backend = new RawBackend();
        await using var gateway = await GatewayServer.StartAsync(RelayConfig.Build(backend.Address, Policy(), lean: lean));
        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/rules");

        // A legal message first: the tunnel works before the violation.
        await client.SendAsync(RawFrames.Encode(RawFrame.Text, "ok"u8));
        Assert.Equal("ok"u8.ToArray(), (await client.ReceiveAsync())!.Payload);

        switch (violation)
        {
            case "message-over-limit":
                await client.SendAsync(RawFrames.Encode(RawFrame.Binary, new byte[600], fin: false));
                Assert.Equal(600, (await client.ReceiveAsync())!.Payload.Length); // the first fragment is within limits and relayed
                await client.SendAsync(RawFrames.Encode(RawFrame.Continuation, new byte[600], fin: true));
                break;
            case "frame-over-limit":
                await client.SendAsync(RawFrames.Encode(RawFrame.Binary, new byte[801]));
                break;
            case "unmasked-frame":
                await client.SendAsync(RawFrames.Encode(RawFrame.Text, "naked"u8, mask: false));
                break;
            case "control-frame-over-125":
                await client.SendAsync(RawFrames.Encode(RawFrame.Ping, new byte[126]));
                break;
            case "fragmented-control-frame":
                await client.SendAsync(RawFrames.Encode(RawFrame.Ping, "x"u8, fin: false));
                break;
        }

        var close = await client.ReceiveAsync(TimeSpan.FromSeconds(10));
        Assert.NotNull(close);
        Assert.Equal(RawFrame.Close, close.Opcode);
        Assert.Equal(expectedCode, close.CloseCode);
        Assert.False(string.IsNullOrEmpty(close.CloseReason));

        var backendClose = await backend.CloseReceived.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(1001, backendClose.CloseCode);
        // The offending frame never reached the backend.
        Assert.DoesNotContain(backend.Received, f => f.Payload.Length is 801 or 126 || f.Opcode == RawFrame.Continuation || f.Opcode == RawFrame.Ping);
        Assert.DoesNotContain(backend.Received, f => f.Opcode == RawFrame.Text && f.Payload.SequenceEqual("naked"u8.ToArray()));
        await client.Ended.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task Messages_within_the_limits_pass_whole()
    {
        await using var backend = new RawBackend();
        await using var gateway = await GatewayServer.StartAsync(RelayConfig.Build(backend.Address, Policy()));
        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/rules");

        await client.SendAsync(RawFrames.Encode(RawFrame.Binary, new byte[800], fin: false));
        await client.SendAsync(RawFrames.Encode(RawFrame.Ping, new byte[125]));
        await client.SendAsync(RawFrames.Encode(RawFrame.Continuation, new byte[200], fin: true));
        await client.SendAsync(RawFrames.Encode(RawFrame.Binary, new byte[500], fin: false));
        await client.SendAsync(RawFrames.Encode(RawFrame.Continuation, new byte[500], fin: true));

        var first = await client.ReceiveAsync();
        Assert.True(first is { Payload.Length: 800 }, $"first frame: {first}, backend got: {string.Join(" | ", backend.Received)}");
        var pong = await client.ReceiveAsync();
        Assert.Equal(RawFrame.Pong, pong!.Opcode);
        Assert.Equal(125, pong.Payload.Length);
        Assert.Equal(200, (await client.ReceiveAsync())!.Payload.Length);
        Assert.Equal(500, (await client.ReceiveAsync())!.Payload.Length);
        Assert.Equal(500, (await client.ReceiveAsync())!.Payload.Length);
        Assert.DoesNotContain(backend.Received, f => f.Opcode == RawFrame.Close);
    }
}
