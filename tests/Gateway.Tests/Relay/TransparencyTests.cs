using System.IO.Compression;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Relay;

/// <summary>What a client sees through the gateway equals what it sees from the backend directly, pings aside.</summary>
public sealed class TransparencyTests
{
    private static JsonObject FrequentPings() => RelayConfig.KeepAlive(Environment.GetEnvironmentVariable("KA") ?? "00:00:00.005", "00:00:05", Environment.GetEnvironmentVariable("KB") != "0");

    [Theory]
    [InlineData(true, false)]
    [InlineData(false, false)]
    [InlineData(true, true)]
    [InlineData(false, true)]
    public async Task A_raw_frame_script_written_one_byte_per_write_comes_back_identical_through_the_gateway(bool lean, bool socketTakeover)
    {
        await using var backend = await Backend.StartAsync("transparent");
        // Pings every few milliseconds to both sides, so that a ping landing inside a frame could not go unnoticed.
        await using var gateway = await GatewayServer.StartAsync(RelayConfig.Build(backend.Address, FrequentPings(), path: "/echo", lean: lean,
            socketTakeover: socketTakeover));

        var script = Script();
        var (direct, _) = await RunAsync(backend.Address, script, waitForPing: false);
        var (proxied, pings) = await RunAsync(gateway.Ws, script, waitForPing: true);

        Assert.Equal(Describe(direct), Describe(proxied));
        Assert.Equal(RawFrame.Close, proxied[^1].Opcode);
        Assert.Equal(1000, proxied[^1].CloseCode);
        Assert.True(pings > 0, "the gateway sent no pings during the script");
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Permessage_deflate_negotiates_end_to_end_and_compressed_frames_pass_untouched(bool lean)
    {
        await using var backend = await Backend.StartAsync("deflate");
        await using var gateway = await GatewayServer.StartAsync(RelayConfig.Build(backend.Address, FrequentPings(), path: "/echo", lean: lean));

        // A real client that compresses.
        using (var socket = new ClientWebSocket())
        {
            socket.Options.CollectHttpResponseDetails = true;
            socket.Options.DangerousDeflateOptions = new WebSocketDeflateOptions();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
            await socket.ConnectAsync(new Uri(gateway.Ws, "/echo"), timeout.Token);
            var extensions = socket.HttpResponseHeaders!["Sec-WebSocket-Extensions"].Single();
            Assert.StartsWith("permessage-deflate", extensions);
            var text = string.Concat(Enumerable.Repeat("compress me, compress me again ", 4000));
            await WebSocketClient.SendTextAsync(socket, text);
            Assert.Equal(text, await WebSocketClient.ReceiveTextAsync(socket));
            Assert.Equal(WebSocketCloseStatus.NormalClosure, await WebSocketClient.CloseAsync(socket));
        }

        // On the wire: a frame with RSV1 set goes in, and the backend's compressed answer (RSV1 set) comes out.
        await using var raw = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/echo",
            "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_no_context_takeover");
        Assert.Contains("permessage-deflate", raw.Response, StringComparison.OrdinalIgnoreCase);
        await raw.SendAsync(RawFrames.Encode(RawFrame.Text, Deflate("hello, compressed world"), rsv: 4), chunk: 1);
        var answer = await raw.ReceiveAsync();
        Assert.NotNull(answer);
        Assert.Equal(4, answer.Rsv);
        Assert.Equal("hello, compressed world", Inflate(answer.Payload));
    }

    private static readonly byte[] LargeFrame = RawFrames.Encode(RawFrame.Binary, RandomNumberGenerator.GetBytes(16 * 1024 * 1024));

    private static List<byte[]> Script()
    {
        // "é", "ö" and "€" are 2 and 3 bytes in UTF-8: cut the message inside them.
        var text = Encoding.UTF8.GetBytes("héllo wörld, 5 € each");
        var cut1 = Array.IndexOf(text, (byte)0xC3) + 1; // inside "é"
        var cut2 = Array.IndexOf(text, (byte)0xE2) + 2; // inside "€"
        return
        [
            RawFrames.Encode(RawFrame.Text, text.AsSpan(0, cut1), fin: false),
            RawFrames.Encode(RawFrame.Ping, "between"u8),
            RawFrames.Encode(RawFrame.Continuation, text.AsSpan(cut1, cut2 - cut1), fin: false),
            RawFrames.Encode(RawFrame.Pong, "unsolicited"u8),
            RawFrames.Encode(RawFrame.Continuation, text.AsSpan(cut2), fin: true),
            RawFrames.Encode(RawFrame.Binary, []),
            RawFrames.Encode(RawFrame.Binary, RandomNumberGenerator.GetBytes(125)),
            RawFrames.Encode(RawFrame.Binary, RandomNumberGenerator.GetBytes(126)),
            RawFrames.Encode(RawFrame.Binary, RandomNumberGenerator.GetBytes(65535)),
            RawFrames.Encode(RawFrame.Binary, RandomNumberGenerator.GetBytes(65536)),
            RawFrames.Encode(RawFrame.Ping, "p2"u8),
        ];
    }

    /// <param name="waitForPing">Through the gateway: the Close waits for a first ping (the script can run faster than a
    /// sweep on a fast path, or a busy machine can delay the sweep), so the ping is seen among the script's frames.</param>
    private static async Task<(List<RawFrame> Frames, int Pings)> RunAsync(Uri baseUri, List<byte[]> script, bool waitForPing)
    {
        await using var client = await RawWebSocketClient.ConnectAsync(baseUri, "/echo");
        foreach (var frame in script)
        {
            await client.SendAsync(frame, chunk: 1);
        }
        // 16 MiB in one frame, in ordinary 64 KiB writes.
        await client.SendAsync(LargeFrame, chunk: 64 * 1024);
        if (waitForPing)
        {
            await Retry.Eventually(() => Assert.True(client.PingsSeen > 0, "no ping yet"), TimeSpan.FromSeconds(5));
        }
        await client.SendAsync(RawFrames.CloseFrame(1000, "done"), chunk: 1);

        var frames = new List<RawFrame>();
        while (await client.ReceiveAsync(TimeSpan.FromSeconds(60)) is { } frame)
        {
            frames.Add(frame);
            if (frame.Opcode == RawFrame.Close)
            {
                break;
            }
        }
        Assert.Null(client.ReadError);
        return (frames, client.PingsSeen);
    }

    private static List<string> Describe(List<RawFrame> frames) =>
        frames.Select(f => $"{f.Opcode}/{f.Fin}/{f.Rsv}/{f.Payload.Length}/{Convert.ToHexString(SHA256.HashData(f.Payload))[..16]}").ToList();

    private static byte[] Deflate(string text)
    {
        using var output = new MemoryStream();
        using var deflate = new DeflateStream(output, CompressionLevel.Optimal, leaveOpen: true);
        deflate.Write(Encoding.UTF8.GetBytes(text));
        deflate.Flush(); // a sync flush: the block ends with 00 00 ff ff and the stream stays open (no final block)
        var bytes = output.ToArray();
        // RFC 7692 §7.2.1: the sender drops the final empty block's 00 00 ff ff.
        return bytes.AsSpan().EndsWith(new byte[] { 0, 0, 0xff, 0xff }) ? bytes[..^4] : bytes;
    }

    private static string Inflate(byte[] payload)
    {
        using var input = new MemoryStream([.. payload, 0, 0, 0xff, 0xff]);
        using var inflate = new DeflateStream(input, CompressionMode.Decompress);
        using var reader = new StreamReader(inflate, Encoding.UTF8);
        var buffer = new char[1024];
        var read = reader.Read(buffer);
        return new string(buffer, 0, read);
    }
}
