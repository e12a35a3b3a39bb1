using System.Diagnostics;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json.Nodes;
using Gateway.Policies;
using Gateway.Tests.Handshake;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace Gateway.Tests.Relay;

/// <summary>
/// The policy's <c>RateLimits</c> on real sockets: a client over its rate is closed with 1008, held to the rate, or has
/// its messages dropped, whole and counted; its neighbours are not touched; control frames are never limited.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class RateLimitTests : IDisposable
{
    private readonly ITestOutputHelper _output;
    private readonly TestCertificates _certificates = new();

    public RateLimitTests(ITestOutputHelper output) => _output = output;

    public void Dispose() => _certificates.Dispose();

    private static JsonObject Rate(double perSecond, double burst) => new() { ["PerSecond"] = perSecond, ["Burst"] = burst };

    /// <summary>A policy whose <paramref name="scope"/> limits messages to <paramref name="perSecond"/> with a burst of <paramref name="burst"/>.</summary>
    private static JsonObject Policy(string action, double perSecond, double burst, string scope = "PerConnection", JsonObject? keepAlive = null) => new()
    {
        ["KeepAlive"] = keepAlive ?? new JsonObject { ["Interval"] = "00:00:30", ["Timeout"] = "00:00:15" },
        ["RateLimits"] = new JsonObject
        {
            [scope] = new JsonObject { ["Messages"] = Rate(perSecond, burst) },
            ["Action"] = action,
        },
    };

    private async Task<GatewayServer> StartAsync(RawBackend backend, JsonObject policy, bool lean = true, CapturingLoggerProvider? logs = null)
    {
        var config = RelayConfig.Build(backend.Address, policy, lean: lean);
        var (certificate, key, _) = _certificates.IssueServer("server", "localhost");
        config["Gateway"]!["Tls"]!["Certificates"] = new JsonArray(new JsonObject { ["Path"] = certificate, ["KeyPath"] = key });
        config["Logging"]!["LogLevel"]!["Gateway.AccessLog"] = "Information";
        config["Logging"]!["LogLevel"]!["Gateway.Relay"] = "Information";
        return await GatewayServer.StartAsync(config, logs is null ? null : services => services.AddSingleton<ILoggerProvider>(logs));
    }

    private static async Task<List<RawFrame>> ReceiveUntilCloseAsync(RawWebSocketClient client)
    {
        var frames = new List<RawFrame>();
        while (await client.ReceiveAsync(TimeSpan.FromSeconds(10)) is { } frame)
        {
            frames.Add(frame);
            if (frame.Opcode == RawFrame.Close)
            {
                break;
            }
        }
        return frames;
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_client_closed_mid_burst_reads_the_1008_and_then_an_orderly_end_never_a_reset(bool lean)
    {
        // A browser pressing "send a burst" is still sending when the gateway's Close leaves: closing the connection with
        // the client's bytes unread would reset it, and a reset throws away the Close before the client reads it (1006).
        await using var backend = new RawBackend();
        await using var gateway = await StartAsync(backend, Policy("Close", perSecond: 0.1, burst: 3), lean);
        using var tcp = new TcpClient { NoDelay = true };
        await tcp.ConnectAsync(gateway.Ws.Host, gateway.Ws.Port);
        var stream = tcp.GetStream();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            $"GET /raw/burst HTTP/1.1\r\nHost: {gateway.Ws.Authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {RawFrames.NewKey()}\r\nSec-WebSocket-Version: 13\r\n\r\n"), timeout.Token);
        Assert.StartsWith("HTTP/1.1 101", await RawFrames.ReadHeadAsync(stream, timeout.Token));

        // The burst goes on for 300 ms after the gateway's Close came, as a client's does until it reads that Close.
        var closeSeen = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var sender = Task.Run(async () =>
        {
            var frame = RawFrames.Encode(RawFrame.Text, "burst"u8);
            for (var i = 0; i < 2000 && !closeSeen.Task.IsCompleted; i++)
            {
                await stream.WriteAsync(frame, timeout.Token);
                await Task.Delay(1);
            }
            var clock = Stopwatch.StartNew();
            while (clock.ElapsedMilliseconds < 300)
            {
                await stream.WriteAsync(frame, timeout.Token);
                await Task.Delay(5);
            }
            await stream.WriteAsync(RawFrames.CloseFrame(1008), timeout.Token); // the client's answer
        });
        RawFrame received;
        do
        {
            received = await RawFrames.ReadAsync(stream, expectMasked: false, timeout.Token);
        }
        while (received.Opcode != RawFrame.Close);
        Assert.Equal(1008, received.CloseCode);
        closeSeen.SetResult();
        await sender; // still sending for 300 ms, then its Close

        // The gateway closes the connection after the client's Close: the client reads an orderly end, not a reset.
        var end = await stream.ReadAsync(new byte[64], timeout.Token);
        Assert.Equal(0, end);
        Assert.Equal(3, backend.Count(RawFrame.Text));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_client_over_its_message_rate_gets_1008_the_backend_1001_and_the_tunnel_is_counted_and_logged(bool lean)
    {
        await using var backend = new RawBackend();
        var logs = new CapturingLoggerProvider();
        await using var gateway = await StartAsync(backend, Policy("Close", perSecond: 5, burst: 5), lean, logs);
        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/close");

        for (var i = 0; i < 10; i++)
        {
            await client.SendAsync(RawFrames.Encode(RawFrame.Text, Encoding.ASCII.GetBytes($"m{i}")));
        }
        var frames = await ReceiveUntilCloseAsync(client);
        var close = frames[^1];
        Assert.Equal(RawFrame.Close, close.Opcode);
        Assert.Equal(1008, close.CloseCode);
        Assert.Equal("rate limit exceeded", close.CloseReason);
        // The Close goes to the client at once: echoes of the 5 that passed may come back after it, and are not relayed then.
        Assert.InRange(frames.Count(f => f.Opcode == RawFrame.Text), 0, 5);
        Assert.Equal(1001, (await backend.CloseReceived.Task.WaitAsync(TimeSpan.FromSeconds(10))).CloseCode);
        Assert.Equal(5, backend.Count(RawFrame.Text));
        // The client answers, as clients do (RFC 6455 §5.5.1); the gateway then closes the connection.
        await client.SendAsync(RawFrames.CloseFrame(1008));
        await client.Ended.WaitAsync(TimeSpan.FromSeconds(10));

        await Retry.Eventually(async () =>
        {
            var metrics = await MetricsScrape.FetchAsync(gateway);
            Assert.Equal(1, metrics.Value("gateway_relay_rate_limited_total", ("route", "raw"), ("direction", "client_to_backend"), ("action", "close")));
            Assert.Equal(1, metrics.Value("gateway_websocket_connections_closed_total", ("closed_by", "gateway_limit"), ("code", "1008")));
        }, TimeSpan.FromSeconds(10));
        var line = await Retry.Eventually(() => Task.FromResult(Assert.Single(logs.Records, r => r.Category == "Gateway.AccessLog")), TimeSpan.FromSeconds(5));
        Assert.EndsWith("1008 gateway_limit rate_limited=close", line.Message);
        _output.WriteLine(line.Message);
    }

    [Theory]
    [InlineData(Transport.Ws, true)]
    [InlineData(Transport.Ws, false)]
    [InlineData(Transport.WssHttp2, true)]
    public async Task A_held_client_is_slowed_to_its_rate(Transport transport, bool lean)
    {
        // 10 s at 20 messages/s after a burst of 20: the burst is the bucket's slack, so a stall of the machine shorter than
        // a second (the full suite runs classes in parallel) is made up afterwards, as the limit allows, and the run
        // keeps the rate.
        const double PerSecond = 20;
        const int Burst = 20;
        const int Messages = Burst + 200;
        await using var backend = new RawBackend();
        await using var gateway = await StartAsync(backend, Policy("Hold", PerSecond, burst: Burst), lean);
        using var client = await WebSocketClient.ConnectAsync(gateway, transport, "/raw/hold", _certificates);
        // One exchange first, so that the measured run has no first-use costs in it; then the bucket refills.
        await WebSocketClient.SendTextAsync(client, "warm");
        Assert.Equal("warm", await WebSocketClient.ReceiveTextAsync(client));
        await Task.Delay(TimeSpan.FromSeconds(2 * Burst / PerSecond));

        var arrivals = new List<TimeSpan>();
        var clock = Stopwatch.StartNew();
        var receiving = Task.Run(async () =>
        {
            for (var i = 0; i < Messages; i++)
            {
                Assert.Equal($"m{i}", await WebSocketClient.ReceiveTextAsync(client));
                arrivals.Add(clock.Elapsed);
            }
        });
        for (var i = 0; i < Messages; i++)
        {
            await WebSocketClient.SendTextAsync(client, $"m{i}"); // all at once: TCP takes them, the gateway holds them
        }
        var sent = clock.Elapsed;
        await receiving.WaitAsync(TimeSpan.FromSeconds(40));

        // The burst passes at once, the other 200 one every 1/20 s: 10 s from the first send. No message arrives before it
        // is due (a few milliseconds for timers), and the whole run keeps the rate within 10 %.
        var early = Enumerable.Range(Burst, Messages - Burst).Where(i => arrivals[i].TotalSeconds < (i - Burst + 1) / PerSecond - 0.02).ToArray();
        var rate = (Messages - Burst) / arrivals[^1].TotalSeconds;
        _output.WriteLine($"{transport} lean={lean}: sent in {sent.TotalMilliseconds:0} ms, the last of {Messages} relayed at "
            + $"{arrivals[^1].TotalSeconds:0.000} s = {rate:0.00}/s; early: {early.Length}");
        Assert.Empty(early);
        Assert.InRange(rate, PerSecond * 0.9, PerSecond * 1.1);
        Assert.True(sent.TotalSeconds < 1, "the client's sends were not held back by the gateway's buffering, only its reads");
        var metrics = await MetricsScrape.FetchAsync(gateway);
        var holds = metrics.Value("gateway_relay_rate_limited_total", ("action", "hold"));
        _output.WriteLine($"holds counted so far: {holds}");
        Assert.InRange(holds, 1, 2 * Messages);
        Assert.Equal(WebSocketCloseStatus.NormalClosure, await WebSocketClient.CloseAsync(client));
    }

    [Fact]
    public async Task Control_frames_pass_while_a_client_is_held_and_a_held_client_is_not_reaped_as_silent()
    {
        await using var backend = new RawBackend();
        // One message every 2 s, and keepalive that would give up on a client silent for 1 s after a ping.
        var keepAlive = new JsonObject { ["Interval"] = "00:00:00.500", ["Timeout"] = "00:00:01" };
        await using var gateway = await StartAsync(backend, Policy("Hold", perSecond: 0.5, burst: 1, keepAlive: keepAlive));
        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/held");

        await client.SendAsync(RawFrames.Encode(RawFrame.Text, "a"u8));
        Assert.Equal("a"u8.ToArray(), (await client.ReceiveAsync(TimeSpan.FromSeconds(5)))!.Payload);
        var clock = Stopwatch.StartNew();
        await client.SendAsync(RawFrames.Encode(RawFrame.Text, "b"u8)); // held for 2 s
        await client.SendAsync(RawFrames.Encode(RawFrame.Ping, "mine"u8));
        await client.SendAsync(RawFrames.Encode(RawFrame.Text, "c"u8)); // held for 2 s more

        // The client's own ping overtakes its held messages (the gateway reads ahead past them): the backend's pong comes at once.
        var pong = (await client.ReceiveAsync(TimeSpan.FromSeconds(5)))!;
        _output.WriteLine($"{clock.Elapsed.TotalSeconds:0.000} s: opcode {pong.Opcode} {Encoding.ASCII.GetString(pong.Payload)}");
        Assert.Equal(RawFrame.Pong, pong.Opcode);
        Assert.Equal("mine"u8.ToArray(), pong.Payload);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1.5), $"the client's ping waited {clock.Elapsed} behind its held message");

        // While held, the backend's frames (a ping, data) reach the client at once, and so do the gateway's pings.
        var pingsBefore = client.PingsSeen;
        await backend.SendRawAsync(0, RawFrames.Encode(RawFrame.Ping, "backend"u8, mask: false));
        await backend.SendRawAsync(0, RawFrames.Encode(RawFrame.Text, "news"u8, mask: false));
        Assert.Equal("news"u8.ToArray(), (await client.ReceiveAsync(TimeSpan.FromSeconds(1)))!.Payload);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(1.5), $"the backend's frames took {clock.Elapsed} to pass a held client");
        await Retry.Eventually(() => Assert.True(client.PingsSeen > pingsBefore), TimeSpan.FromSeconds(1));

        // The held messages follow in order; the ping cost no token, so "c" waits one interval after "b", not two.
        var rest = new List<(RawFrame Frame, TimeSpan At)>();
        while (rest.Count < 2 && await client.ReceiveAsync(TimeSpan.FromSeconds(10)) is { } frame)
        {
            rest.Add((frame, clock.Elapsed));
            _output.WriteLine($"{clock.Elapsed.TotalSeconds:0.000} s: opcode {frame.Opcode} {Encoding.ASCII.GetString(frame.Payload)}");
        }
        Assert.Equal(["b"u8.ToArray(), "c"u8.ToArray()], rest.Select(f => f.Frame.Payload));
        Assert.InRange(rest[1].At.TotalSeconds, 3.5, 5.5);
        // The client answered the gateway's pings all along (its pongs overtook the held data too), while the backend
        // heard nothing of them: of the client's pongs only the one to the backend's own ping reached it.
        Assert.Single(backend.Received, f => f.Opcode == RawFrame.Ping && f.Payload.AsSpan().SequenceEqual("mine"u8));
        Assert.Equal(["backend"], backend.Received.Where(f => f.Opcode == RawFrame.Pong).Select(f => Encoding.ASCII.GetString(f.Payload)));
        // Held for about 4 s with keepalive that reaps after 1.5 s of silence: still open.
        Assert.DoesNotContain(backend.Received, f => f.Opcode == RawFrame.Close);
        await client.SendAsync(RawFrames.CloseFrame(1000));
        Assert.Equal(RawFrame.Close, (await client.ReceiveAsync(TimeSpan.FromSeconds(5)))!.Opcode);
    }

    [Fact]
    public async Task Dropped_messages_are_dropped_whole_fragments_and_all_and_counted()
    {
        await using var backend = new RawBackend();
        var logs = new CapturingLoggerProvider();
        await using var gateway = await StartAsync(backend, Policy("Drop", perSecond: 2, burst: 5), logs: logs);
        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/drop");

        for (var i = 0; i < 5; i++)
        {
            await client.SendAsync(RawFrames.Encode(RawFrame.Text, Encoding.ASCII.GetBytes($"a{i}")));
        }
        // Over the limit: a fragmented message with a ping between its fragments, then two more.
        await client.SendAsync(RawFrames.Encode(RawFrame.Text, "f1"u8, fin: false));
        await client.SendAsync(RawFrames.Encode(RawFrame.Ping, "between"u8));
        await client.SendAsync(RawFrames.Encode(RawFrame.Continuation, "f2"u8, fin: false));
        await client.SendAsync(RawFrames.Encode(RawFrame.Continuation, "f3"u8, fin: true));
        await client.SendAsync(RawFrames.Encode(RawFrame.Text, "b0"u8));
        await client.SendAsync(RawFrames.Encode(RawFrame.Binary, new byte[3000]));

        var received = new List<RawFrame>();
        for (var i = 0; i < 6; i++)
        {
            received.Add((await client.ReceiveAsync(TimeSpan.FromSeconds(5)))!);
        }
        Assert.Equal(5, received.Count(f => f.Opcode == RawFrame.Text));
        Assert.Equal("between"u8.ToArray(), Assert.Single(received, f => f.Opcode == RawFrame.Pong).Payload);
        Assert.Empty(await client.IdleAsync(TimeSpan.FromMilliseconds(300)));

        // A token later the next message passes whole: the backend never saw a fragment of the dropped one.
        await Task.Delay(600);
        await client.SendAsync(RawFrames.Encode(RawFrame.Text, "after"u8));
        Assert.Equal("after"u8.ToArray(), (await client.ReceiveAsync(TimeSpan.FromSeconds(5)))!.Payload);
        Assert.Equal(0, backend.Count(RawFrame.Continuation));
        Assert.Equal(6, backend.Count(RawFrame.Text));
        Assert.Equal(0, backend.Count(RawFrame.Binary));
        Assert.Equal(1, backend.Count(RawFrame.Ping));

        await client.SendAsync(RawFrames.CloseFrame(1000));
        Assert.Equal(RawFrame.Close, (await client.ReceiveAsync(TimeSpan.FromSeconds(5)))!.Opcode);
        var metrics = await Retry.Eventually(async () =>
        {
            var scrape = await MetricsScrape.FetchAsync(gateway);
            Assert.Equal(3, scrape.Value("gateway_relay_rate_limited_total", ("route", "raw"), ("direction", "client_to_backend"), ("action", "drop")));
            return scrape;
        }, TimeSpan.FromSeconds(10));
        var line = await Retry.Eventually(() => Task.FromResult(Assert.Single(logs.Records, r => r.Category == "Gateway.AccessLog")), TimeSpan.FromSeconds(5));
        _output.WriteLine(line.Message);
        Assert.Contains("client->backend 6 msgs", line.Message);
        Assert.EndsWith("1000 client rate_limited=drop:3", line.Message);
        Assert.Equal(6, metrics.Value("gateway_relay_messages_total", ("route", "raw"), ("direction", "client_to_backend")));
    }

    [Fact]
    public async Task A_neighbour_on_the_same_backend_is_not_affected_by_a_client_closed_for_flooding()
    {
        await using var backend = new RawBackend();
        await using var gateway = await StartAsync(backend, Policy("Close", perSecond: 5, burst: 5));
        await using var flooder = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/a");
        await using var neighbour = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/b");

        var flood = Task.Run(async () =>
        {
            for (var i = 0; i < 50; i++)
            {
                await flooder.SendAsync(RawFrames.Encode(RawFrame.Text, "spam"u8));
            }
        });
        for (var i = 0; i < 5; i++)
        {
            await neighbour.SendAsync(RawFrames.Encode(RawFrame.Text, Encoding.ASCII.GetBytes($"n{i}")));
            Assert.Equal(Encoding.ASCII.GetBytes($"n{i}"), (await neighbour.ReceiveAsync(TimeSpan.FromSeconds(5)))!.Payload);
        }
        await flood.WaitAsync(TimeSpan.FromSeconds(10)).ContinueWith(_ => { });
        Assert.Equal(1008, (await ReceiveUntilCloseAsync(flooder))[^1].CloseCode);
        // Still served after the flooder is gone, within its own allowance.
        await Task.Delay(300);
        await neighbour.SendAsync(RawFrames.Encode(RawFrame.Text, "still here"u8));
        Assert.Equal("still here"u8.ToArray(), (await neighbour.ReceiveAsync(TimeSpan.FromSeconds(5)))!.Payload);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task PerClient_is_shared_by_two_connections_from_one_address(bool lean)
    {
        await using var backend = new RawBackend();
        await using var gateway = await StartAsync(backend, Policy("Close", perSecond: 1, burst: 4, scope: "PerClient"), lean);
        await using var first = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/one");
        await using var second = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/two");

        for (var i = 0; i < 2; i++)
        {
            await first.SendAsync(RawFrames.Encode(RawFrame.Text, "1"u8));
            Assert.NotNull(await first.ReceiveAsync(TimeSpan.FromSeconds(5)));
            await second.SendAsync(RawFrames.Encode(RawFrame.Text, "2"u8));
            Assert.NotNull(await second.ReceiveAsync(TimeSpan.FromSeconds(5)));
        }
        // Four messages from the address: each connection alone is within 4, together they are at it.
        await second.SendAsync(RawFrames.Encode(RawFrame.Text, "over"u8));
        var close = await second.ReceiveAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(1008, close!.CloseCode);
        Assert.Empty(await first.IdleAsync(TimeSpan.FromMilliseconds(200)));
        Assert.Equal(4, backend.Count(RawFrame.Text));
        // One address, one bucket, whichever of its connections uses it.
        var metrics = await MetricsScrape.FetchAsync(gateway);
        Assert.Equal(1, metrics.Value("gateway_rate_limit_shared_buckets"));
    }

    [Fact]
    public async Task New_numbers_apply_to_open_tunnels_when_the_policy_reloads()
    {
        await using var backend = new RawBackend();
        await using var gateway = await StartAsync(backend, Policy("Close", perSecond: 1000, burst: 1000));
        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/reload");
        for (var i = 0; i < 10; i++)
        {
            await client.SendAsync(RawFrames.Encode(RawFrame.Text, "x"u8));
            Assert.NotNull(await client.ReceiveAsync(TimeSpan.FromSeconds(5)));
        }

        var policies = gateway.Services.GetRequiredService<WebSocketPolicies>();
        var version = policies.Version;
        var edit = (JsonObject)JsonNode.Parse(await File.ReadAllTextAsync(gateway.ConfigPath))!;
        edit["Gateway"]!["WebSocketPolicies"]!["test"]!["RateLimits"]!["PerConnection"]!["Messages"] = Rate(2, 2);
        await gateway.RewriteConfigAsync(edit.ToJsonString());
        await Retry.Eventually(() => Assert.NotEqual(version, policies.Version), TimeSpan.FromSeconds(10));
        await Task.Delay(TimeSpan.FromSeconds(1.5)); // one sweep (every second here) hands the tunnel its new numbers

        for (var i = 0; i < 5; i++)
        {
            await client.SendAsync(RawFrames.Encode(RawFrame.Text, "y"u8));
        }
        var frames = await ReceiveUntilCloseAsync(client);
        Assert.Equal(1008, frames[^1].CloseCode);
        // The new burst (2) caps what the old one (1,000) had left: two more reached the backend.
        await backend.CloseReceived.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(12, backend.Count(RawFrame.Text));
    }

    [Fact]
    public async Task A_backend_held_by_BackendPerConnection_is_slowed_to_its_byte_rate_while_the_client_goes_on()
    {
        await using var backend = new RawBackend();
        var policy = new JsonObject
        {
            ["RateLimits"] = new JsonObject
            {
                ["BackendPerConnection"] = new JsonObject { ["Bytes"] = Rate(65536, 16384) },
                ["Action"] = "Hold",
            },
        };
        await using var gateway = await StartAsync(backend, policy);
        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/news");

        // 12 frames of 16 KiB: the first fills the burst, the other 11 go at 64 KiB/s, one every 0.25 s.
        await client.SendAsync(RawFrames.Encode(RawFrame.Text, "flood:196608"u8));
        var clock = Stopwatch.StartNew();
        var arrivals = new List<TimeSpan>();
        for (var i = 0; i < 12; i++)
        {
            Assert.Equal(16384, (await client.ReceiveAsync(TimeSpan.FromSeconds(10)))!.Payload.Length);
            arrivals.Add(clock.Elapsed);
            if (i == 2)
            {
                // The client's direction is not held: its message reaches the backend at once.
                await client.SendAsync(RawFrames.Encode(RawFrame.Text, "meanwhile"u8));
                await Retry.Eventually(() => Assert.Contains(backend.Received, f => f.Payload.AsSpan().SequenceEqual("meanwhile"u8)), TimeSpan.FromMilliseconds(200));
            }
        }
        // No frame before it is due (frame i at i/4 s after the flood began, a few milliseconds for timers): the limit is
        // never exceeded. The whole run keeps the rate within 10 % on a quiet machine (65,460-65,508 B/s measured); stalls
        // of a busy one (the full suite runs classes in parallel; 47,551 B/s seen once in CI) only delay frames, so the
        // run's floor only catches a hold that never ends.
        var early = Enumerable.Range(1, 11).Where(i => arrivals[i].TotalSeconds < i * 0.25 - 0.02).ToArray();
        var rate = 11 * 16384 / arrivals[^1].TotalSeconds;
        _output.WriteLine($"backend to client: the 12th 16 KiB frame at {arrivals[^1].TotalSeconds:0.000} s = {rate:0} B/s; early: {early.Length}");
        Assert.Empty(early);
        Assert.InRange(rate, 65536 * 0.5, 65536 * 1.1);
    }

    [Fact]
    public async Task A_held_backends_pings_overtake_its_held_messages_and_a_Close_keeps_its_place()
    {
        await using var backend = new RawBackend();
        var policy = new JsonObject
        {
            ["RateLimits"] = new JsonObject
            {
                ["BackendPerConnection"] = new JsonObject { ["Messages"] = Rate(0.5, 1) },
                ["Action"] = "Hold",
            },
        };
        await using var gateway = await StartAsync(backend, policy);
        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/held-news");
        await Retry.Eventually(() => Assert.Equal(1, backend.Connections), TimeSpan.FromSeconds(5));

        // One message passes (burst 1), the next is held for 2 s; the backend's ping after it, and its pong to the
        // client's ping, pass at once; its Close stays behind the held message (nothing may follow a Close).
        var clock = Stopwatch.StartNew();
        await backend.SendRawAsync(0, [
            .. RawFrames.Encode(RawFrame.Text, "x1"u8, mask: false),
            .. RawFrames.Encode(RawFrame.Text, "x2"u8, mask: false),
            .. RawFrames.Encode(RawFrame.Ping, "backend"u8, mask: false),
            .. RawFrames.Encode(RawFrame.Pong, "unasked"u8, mask: false),
            .. RawFrames.CloseFrame(1000, mask: false),
        ]);
        var frames = new List<(RawFrame Frame, TimeSpan At)>();
        while (await client.ReceiveAsync(TimeSpan.FromSeconds(10)) is { } frame)
        {
            frames.Add((frame, clock.Elapsed));
            _output.WriteLine($"{clock.Elapsed.TotalSeconds:0.000} s: opcode {frame.Opcode} {Encoding.ASCII.GetString(frame.Payload)}");
            if (frame.Opcode == RawFrame.Close)
            {
                break;
            }
        }
        Assert.Equal([RawFrame.Text, RawFrame.Pong, RawFrame.Text, RawFrame.Close], frames.Select(f => f.Frame.Opcode));
        Assert.Equal(1, client.PingsSeen);
        Assert.True(frames[1].At < TimeSpan.FromSeconds(1.5), $"the backend's pong waited {frames[1].At} behind its held message");
        Assert.Equal("x2"u8.ToArray(), frames[2].Frame.Payload);
        Assert.InRange(frames[2].At.TotalSeconds, 1.9, 4);
        // The client answered the backend's ping while x2 was held: the pong reached the backend before x2 was even sent on.
        await Retry.Eventually(() => Assert.Contains(backend.Received, f => f.Opcode == RawFrame.Pong), TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task A_backend_over_BackendPerConnection_in_close_mode_gets_1008_and_its_client_1001()
    {
        await using var backend = new RawBackend();
        var policy = new JsonObject
        {
            ["RateLimits"] = new JsonObject
            {
                // A burst of 2 and a slow refill: a busy machine that spreads the echoes over a second still sees the third over.
                ["BackendPerConnection"] = new JsonObject { ["Messages"] = Rate(0.1, 2) },
            },
        };
        await using var gateway = await StartAsync(backend, policy);
        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/echo");
        for (var i = 0; i < 5; i++)
        {
            await client.SendAsync(RawFrames.Encode(RawFrame.Text, "x"u8)); // each echoed: the third echo is over
        }
        var frames = await ReceiveUntilCloseAsync(client);
        Assert.Equal(1001, frames[^1].CloseCode);
        Assert.Equal(2, frames.Count(f => f.Opcode == RawFrame.Text));
        var backendClose = await backend.CloseReceived.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(1008, backendClose.CloseCode);
        var metrics = await Retry.Eventually(async () =>
        {
            var scrape = await MetricsScrape.FetchAsync(gateway);
            Assert.Equal(1, scrape.Value("gateway_relay_rate_limited_total", ("direction", "backend_to_client"), ("action", "close")));
            return scrape;
        }, TimeSpan.FromSeconds(10));
        Assert.Equal(1, metrics.Value("gateway_websocket_connections_closed_total", ("closed_by", "gateway_limit"), ("code", "1008")));
    }
}
