using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Gateway.Tests.Handshake;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace Gateway.Tests.Relay;

/// <summary>
/// The fault contract on real sockets: what a client and a backend get when the other misbehaves or dies, that a
/// neighbouring tunnel on the same backend keeps working, and that nothing a client does counts against the backend.
/// </summary>
/// <remarks>On the lean HTTP/1.1 path here, on Kestrel's in <see cref="FaultTestsOnKestrelsPath"/>.</remarks>
[Collection(SerialCollection.Name)]
public class FaultTests(ITestOutputHelper output)
{
    /// <summary>Gateway:LeanUpgrades for every gateway these tests start.</summary>
    protected virtual bool Lean => true;

    /// <summary>Gateway:SocketTakeover for every gateway these tests start.</summary>
    protected virtual bool SocketTakeover => false;

    private JsonObject Config(Uri backend, string interval = "00:00:30", string timeout = "00:00:15")
    {
        var config = RelayConfig.Build(backend, RelayConfig.KeepAlive(interval, timeout), lean: Lean, socketTakeover: SocketTakeover);
        // Passive health on, as an operator would have it: it must not hear of what clients do.
        config["ReverseProxy"]!["Clusters"]!["raw"]!["HealthCheck"] = new JsonObject
        {
            ["Passive"] = new JsonObject { ["Enabled"] = true, ["Policy"] = "TransportFailureRate", ["ReactivationPeriod"] = "00:01:00" },
        };
        return config;
    }

    public static TheoryData<string, byte[]> ClientFrameViolations => new()
    {
        { "RSV2", RawFrames.Encode(RawFrame.Text, "x"u8, rsv: 2) },
        { "RSV3", RawFrames.Encode(RawFrame.Text, "x"u8, rsv: 1) },
        { "RSV1 without permessage-deflate", RawFrames.Encode(RawFrame.Text, "x"u8, rsv: 4) },
        { "opcode 3", RawFrames.Encode(0x3, "x"u8) },
        { "opcode 7", RawFrames.Encode(0x7, "x"u8) },
        { "opcode 0xB", RawFrames.Encode(0xB, "x"u8) },
        { "opcode 0xF", RawFrames.Encode(0xF, "x"u8) },
    };

    [Theory]
    [MemberData(nameof(ClientFrameViolations))]
    public async Task A_client_frame_no_extension_allows_gets_1002_and_the_backend_a_1001_and_stays_healthy(string kind, byte[] frame)
    {
        await using var backend = new RawBackend();
        await using var gateway = await GatewayServer.StartAsync(Config(backend.Address));
        await using var neighbour = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/neighbour");

        // More bad tunnels than passive health needs to judge a destination (10 requests in its window).
        for (var i = 0; i < 12; i++)
        {
            await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, $"/raw/bad{i}");
            await client.SendAsync(frame);
            var close = await client.ReceiveAsync(TimeSpan.FromSeconds(5));
            Assert.True(close is { Opcode: RawFrame.Close }, $"{kind}: the client got {close?.ToString() ?? "nothing"}");
            Assert.Equal(1002, close!.CloseCode);
            await client.Ended.WaitAsync(TimeSpan.FromSeconds(10));
        }

        // The backend heard 1001 on every bad tunnel and never the offending frame.
        await Retry.Eventually(() => Assert.Equal(12, backend.Received.Count(f => f is { Opcode: RawFrame.Close, CloseCode: 1001 })), TimeSpan.FromSeconds(5));
        Assert.DoesNotContain(backend.Received, f => f.Rsv != 0 || f.Opcode is >= 3 and <= 7 or >= 0xB);

        await neighbour.SendAsync(RawFrames.Encode(RawFrame.Text, "still here"u8));
        Assert.Equal("still here", Encoding.UTF8.GetString((await neighbour.ReceiveAsync(TimeSpan.FromSeconds(5)))!.Payload));
        var metrics = await MetricsScrape.FetchAsync(gateway);
        Assert.Equal(1, metrics.Value("gateway_destination_health", ("destination", "d1")));
        Assert.Equal(0, metrics.Value("gateway_proxy_errors_total"));
        Assert.Equal(12, metrics.Value("gateway_websocket_connections_closed_total", ("closed_by", "gateway_limit"), ("code", "1002")));
        // A new client still gets in.
        await using var late = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/late");
    }

    [Fact]
    public async Task RSV1_passes_when_the_backend_agreed_to_permessage_deflate()
    {
        await using var backend = new RawBackend { Extensions = "permessage-deflate; client_no_context_takeover" };
        await using var gateway = await GatewayServer.StartAsync(Config(backend.Address));
        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/deflate", "Sec-WebSocket-Extensions: permessage-deflate");

        await client.SendAsync(RawFrames.Encode(RawFrame.Text, "compressed, as far as the gateway knows"u8, rsv: 4));
        var echo = await client.ReceiveAsync(TimeSpan.FromSeconds(5));
        Assert.NotNull(echo);
        Assert.Equal(RawFrame.Text, echo.Opcode);
        Assert.Equal(4, echo.Rsv);
        // Only RSV1: RSV2 is still refused.
        await client.SendAsync(RawFrames.Encode(RawFrame.Text, "x"u8, rsv: 2));
        Assert.Equal(1002, (await client.ReceiveAsync(TimeSpan.FromSeconds(5)))!.CloseCode);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_backend_connection_that_ends_without_a_close_gives_its_client_1014_at_once(bool reset)
    {
        await using var backend = new RawBackend();
        await using var gateway = await GatewayServer.StartAsync(Config(backend.Address));
        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/victim");
        await using var neighbour = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/neighbour");
        await client.SendAsync(RawFrames.Encode(RawFrame.Text, "hello"u8));
        Assert.NotNull(await client.ReceiveAsync(TimeSpan.FromSeconds(5)));

        var clock = Stopwatch.StartNew();
        if (reset)
        {
            backend.Reset(0);
        }
        else
        {
            backend.HangUp(0);
        }
        var close = await client.ReceiveAsync(TimeSpan.FromSeconds(5));
        var elapsed = clock.Elapsed;
        output.WriteLine($"{(reset ? "RST" : "FIN")}: Close {close?.CloseCode} '{close?.CloseReason}' after {elapsed.TotalMilliseconds:0.0} ms");
        Assert.True(close is { Opcode: RawFrame.Close }, $"the client got {close?.ToString() ?? "nothing"}");
        Assert.Equal(1014, close!.CloseCode);
        Assert.True(elapsed < TimeSpan.FromSeconds(1), $"the Close took {elapsed}"); // 100 ms is the target; this machine is noisy
        await client.Ended.WaitAsync(TimeSpan.FromSeconds(5));

        await neighbour.SendAsync(RawFrames.Encode(RawFrame.Text, "unaffected"u8));
        Assert.Equal("unaffected", Encoding.UTF8.GetString((await neighbour.ReceiveAsync(TimeSpan.FromSeconds(5)))!.Payload));
        var metrics = await Retry.Eventually(async () =>
        {
            var scrape = await MetricsScrape.FetchAsync(gateway);
            Assert.Equal(1, scrape.Value("gateway_websocket_connections_closed_total", ("closed_by", "backend"), ("code", "1006")));
            return scrape;
        }, TimeSpan.FromSeconds(5));
        Assert.Equal(1, metrics.Value("gateway_relay_gateway_closes_total", ("side", "client"), ("code", "1014")));
        // Passive health hears of it, as YARP's own failure of a backend stream.
        Assert.Equal(1, metrics.Value("gateway_proxy_errors_total", ("error", "UpgradeResponseDestination")));
    }

    [Fact]
    public async Task A_backend_that_dies_between_fragments_still_gives_its_client_a_close()
    {
        await using var backend = new RawBackend();
        await using var gateway = await GatewayServer.StartAsync(Config(backend.Address));
        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/fragments");
        await Retry.Eventually(() => Assert.Equal(1, backend.Connections), TimeSpan.FromSeconds(5));

        await backend.SendRawAsync(0, RawFrames.Encode(RawFrame.Text, "first half, "u8, fin: false, mask: false));
        var first = await client.ReceiveAsync(TimeSpan.FromSeconds(5));
        Assert.False(first!.Fin);
        backend.Reset(0);

        // A control frame may come between the fragments of a message (RFC 6455 §5.4): the Close is valid there.
        var close = await client.ReceiveAsync(TimeSpan.FromSeconds(5));
        Assert.True(close is { Opcode: RawFrame.Close, CloseCode: 1014 }, $"the client got {close?.ToString() ?? "nothing"}");
        Assert.Null(client.ReadError);
    }

    [Fact]
    public async Task A_backend_that_sends_garbage_gets_its_client_1014_and_counts_against_it()
    {
        await using var backend = new RawBackend();
        await using var gateway = await GatewayServer.StartAsync(Config(backend.Address));
        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/garbage");
        await using var neighbour = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/neighbour");
        await Retry.Eventually(() => Assert.Equal(2, backend.Connections), TimeSpan.FromSeconds(5));

        // A masked frame from a server (RFC 6455 §5.1), then bytes that are no frame at all.
        await backend.SendRawAsync(0, [.. RawFrames.Encode(RawFrame.Text, "not from a server"u8, mask: true), 0xFF, 0xFF, 0xFF, 0xFF]);
        var close = await client.ReceiveAsync(TimeSpan.FromSeconds(5));
        Assert.True(close is { Opcode: RawFrame.Close, CloseCode: 1014 }, $"the client got {close?.ToString() ?? "nothing"}");
        Assert.Equal(1002, (await backend.CloseReceived.Task.WaitAsync(TimeSpan.FromSeconds(5))).CloseCode);

        await neighbour.SendAsync(RawFrames.Encode(RawFrame.Text, "unaffected"u8));
        Assert.Equal("unaffected", Encoding.UTF8.GetString((await neighbour.ReceiveAsync(TimeSpan.FromSeconds(5)))!.Payload));
        await Retry.Eventually(async () =>
        {
            var scrape = await MetricsScrape.FetchAsync(gateway);
            Assert.Equal(1, scrape.Value("gateway_websocket_connections_closed_total", ("closed_by", "gateway_limit"), ("code", "1014")));
            Assert.Equal(1, scrape.Value("gateway_proxy_errors_total", ("error", "UpgradeResponseDestination")));
        }, TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task A_client_that_stops_reading_is_cut_its_backend_told_1001_and_it_is_the_clients_doing()
    {
        await using var backend = new RawBackend();
        await using var gateway = await GatewayServer.StartAsync(Config(backend.Address, interval: "00:00:30", timeout: "00:00:01"));
        await using var neighbour = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/neighbour");
        using var stalled = await ConnectWithoutReadingAsync(gateway.Ws, "/raw/stalled");
        await Retry.Eventually(() => Assert.Equal(2, backend.Connections), TimeSpan.FromSeconds(5));

        // The backend pushes 32 MiB at a client whose receive window is 4 KiB and which never reads.
        var clock = Stopwatch.StartNew();
        await stalled.GetStream().WriteAsync(RawFrames.Encode(RawFrame.Text, "flood:33554432"u8));

        var close = await backend.CloseReceived.Task.WaitAsync(TimeSpan.FromSeconds(15));
        output.WriteLine($"backend told {close.CloseCode} '{Encoding.UTF8.GetString(close.Payload, 2, close.Payload.Length - 2)}' after {clock.Elapsed.TotalSeconds:0.00} s");
        Assert.Equal(1001, close.CloseCode);
        var metrics = await Retry.Eventually(async () =>
        {
            var scrape = await MetricsScrape.FetchAsync(gateway);
            Assert.Equal(1, scrape.Value("gateway_websocket_connections_closed_total", ("closed_by", "client_stalled")));
            return scrape;
        }, TimeSpan.FromSeconds(10));
        Assert.Equal(0, metrics.Value("gateway_websocket_connections_closed_total", ("closed_by", "gateway_reaped")));
        Assert.Equal(0, metrics.Value("gateway_keepalive_peers_reaped_total", ("side", "backend")));
        Assert.Equal(0, metrics.Value("gateway_proxy_errors_total"));
        Assert.Equal(1, metrics.Value("gateway_destination_health", ("destination", "d1")));

        await neighbour.SendAsync(RawFrames.Encode(RawFrame.Text, "unaffected"u8));
        Assert.Equal("unaffected", Encoding.UTF8.GetString((await neighbour.ReceiveAsync(TimeSpan.FromSeconds(5)))!.Payload));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_client_that_vanishes_gets_its_backend_a_1001_and_logs_no_error(bool reset)
    {
        await using var backend = new RawBackend();
        var logs = new CapturingLoggerProvider();
        await using var gateway = await GatewayServer.StartAsync(Config(backend.Address), services => services.AddSingleton<ILoggerProvider>(logs));
        var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/vanishing");
        await client.SendAsync(RawFrames.Encode(RawFrame.Text, "hello"u8));
        Assert.NotNull(await client.ReceiveAsync(TimeSpan.FromSeconds(5)));

        var before = logs.Records.Count;
        if (reset)
        {
            client.Reset();
        }
        else
        {
            client.HangUp();
        }
        var close = await backend.CloseReceived.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(1001, close.CloseCode);
        await client.DisposeAsync();

        var metrics = await Retry.Eventually(async () =>
        {
            var scrape = await MetricsScrape.FetchAsync(gateway);
            Assert.Equal(1, scrape.Value("gateway_websocket_connections_closed_total", ("closed_by", "client"), ("code", "1006")));
            return scrape;
        }, TimeSpan.FromSeconds(5));
        Assert.Equal(0, metrics.Value("gateway_proxy_errors_total"));
        Assert.Equal(1, metrics.Value("gateway_destination_health", ("destination", "d1")));
        // YARP logged a ~900-byte warning with a stack trace for every such client; now nothing at all.
        Assert.DoesNotContain(logs.Records.Skip(before), r => r.Level >= LogLevel.Warning);
    }

    /// <summary>A WebSocket client on a socket with a 4 KiB receive buffer that never reads after the handshake.</summary>
    private static async Task<TcpClient> ConnectWithoutReadingAsync(Uri gateway, string path)
    {
        var tcp = new TcpClient { NoDelay = true, ReceiveBufferSize = 4096 };
        await tcp.ConnectAsync(gateway.Host, gateway.Port);
        var stream = tcp.GetStream();
        var key = RawFrames.NewKey();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            $"GET {path} HTTP/1.1\r\nHost: {gateway.Authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var head = await RawFrames.ReadHeadAsync(stream, timeout.Token);
        Assert.StartsWith("HTTP/1.1 101", head);
        return tcp;
    }
}

/// <summary>The same fault contract with HTTP/1.1 upgrades on Kestrel's own path (Gateway:LeanUpgrades false).</summary>
[Collection(SerialCollection.Name)]
public sealed class FaultTestsOnKestrelsPath(ITestOutputHelper output) : FaultTests(output)
{
    protected override bool Lean => false;
}

/// <summary>
/// The same fault contract with the client's socket taken over by the tunnel (Gateway:SocketTakeover): a stalled client is
/// cut by closing its socket, a vanished one is seen on the socket itself.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class FaultTestsWithSocketTakeover(ITestOutputHelper output) : FaultTests(output)
{
    protected override bool SocketTakeover => true;
}
