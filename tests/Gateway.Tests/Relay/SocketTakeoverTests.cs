using System.Net.Security;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Gateway.Tests.Handshake;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Gateway.Tests.Relay;

/// <summary>
/// Gateway:SocketTakeover: a plain ws tunnel on the lean path takes the client's socket from the gateway's transport after
/// the 101. What the transport had already received (a first frame in the same write as the handshake) must reach the
/// backend, and the tunnel then relays both ways on the socket itself.
/// </summary>
public sealed class SocketTakeoverTests
{
    private const int TakenOverEvent = 316;
    private const int WentDirectEvent = 317;

    [Fact]
    public async Task A_frame_sent_in_the_same_write_as_the_handshake_reaches_the_backend_and_the_taken_over_tunnel_relays_both_ways()
    {
        await using var backend = await Backend.StartAsync("transparent");
        var logs = new CapturingLoggerProvider();
        await using var gateway = await GatewayServer.StartAsync(Config(backend), services => services.AddSingleton<ILoggerProvider>(logs));

        using var tcp = new TcpClient { NoDelay = true };
        await tcp.ConnectAsync(gateway.Ws.Host, gateway.Ws.Port);
        var stream = tcp.GetStream();
        var head = Encoding.ASCII.GetBytes(
            $"GET /echo HTTP/1.1\r\nHost: {gateway.Ws.Authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {RawFrames.NewKey()}\r\nSec-WebSocket-Version: 13\r\n\r\n");
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        // One write: the handshake with the first frame right behind it.
        await stream.WriteAsync((byte[])[.. head, .. RawFrames.Encode(RawFrame.Text, "first"u8)], timeout.Token);

        Assert.StartsWith("HTTP/1.1 101", await RawFrames.ReadHeadAsync(stream, timeout.Token));
        Assert.Equal("first", await ReadTextAsync(stream, timeout.Token));
        for (var i = 0; i < 3; i++)
        {
            await stream.WriteAsync(RawFrames.Encode(RawFrame.Text, Encoding.UTF8.GetBytes($"next {i}")), timeout.Token);
            Assert.Equal($"next {i}", await ReadTextAsync(stream, timeout.Token));
        }
        await stream.WriteAsync(RawFrames.CloseFrame(1000, "done"), timeout.Token);
        var close = await ReadNonPingAsync(stream, timeout.Token);
        Assert.Equal(RawFrame.Close, close.Opcode);
        Assert.Equal(1000, close.CloseCode);

        var taken = logs.Lines.Where(l => l.Id.Id == TakenOverEvent).Select(l => l.Message).ToList();
        var line = Assert.Single(taken);
        Assert.DoesNotContain("(0 bytes", line, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_tunnel_ends_when_the_client_of_a_taken_over_socket_hangs_up()
    {
        await using var backend = await Backend.StartAsync("transparent");
        var logs = new CapturingLoggerProvider();
        await using var gateway = await GatewayServer.StartAsync(Config(backend), services => services.AddSingleton<ILoggerProvider>(logs));

        await using (var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/echo"))
        {
            await client.SendAsync(RawFrames.Encode(RawFrame.Text, "hello"u8));
            var echo = await client.ReceiveAsync(TimeSpan.FromSeconds(10));
            Assert.Equal("hello", Encoding.UTF8.GetString(echo!.Payload));
            client.Reset();
        }
        Assert.Contains(logs.Lines, l => l.Id.Id == TakenOverEvent);
        // The reset ends the tunnel: it leaves the sweep.
        var sweeper = gateway.Services.GetRequiredService<Gateway.Relay.KeepAliveSweeper>();
        await Retry.Eventually(() => Assert.Equal(0, sweeper.OpenTunnels), TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task A_wss_tunnel_goes_direct_relays_a_frame_sent_with_its_handshake_and_ends_when_its_client_hangs_up()
    {
        using var certificates = new TestCertificates();
        await using var backend = await Backend.StartAsync("transparent");
        var logs = new CapturingLoggerProvider();
        var config = Config(backend);
        var (certificate, key, _) = certificates.IssueServer("server", "localhost");
        config["Gateway"]!["Tls"]!["Certificates"] = new JsonArray(new JsonObject { ["Path"] = certificate, ["KeyPath"] = key });
        await using var gateway = await GatewayServer.StartAsync(config, services => services.AddSingleton<ILoggerProvider>(logs));

        using var tcp = new TcpClient { NoDelay = true };
        await tcp.ConnectAsync(gateway.Wss.Host, gateway.Wss.Port);
        await using var tls = new SslStream(tcp.GetStream());
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "localhost",
            ApplicationProtocols = [SslApplicationProtocol.Http11],
            RemoteCertificateValidationCallback = certificates.Validate,
        }, timeout.Token);
        var head = Encoding.ASCII.GetBytes(
            $"GET /echo HTTP/1.1\r\nHost: {gateway.Wss.Authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {RawFrames.NewKey()}\r\nSec-WebSocket-Version: 13\r\n\r\n");
        // One TLS record: the handshake with the first frame right behind it, which the transport may already have received.
        await tls.WriteAsync((byte[])[.. head, .. RawFrames.Encode(RawFrame.Text, "first"u8)], timeout.Token);

        Assert.StartsWith("HTTP/1.1 101", await RawFrames.ReadHeadAsync(tls, timeout.Token));
        Assert.Equal("first", await ReadTextAsync(tls, timeout.Token));
        for (var i = 0; i < 3; i++)
        {
            // Messages larger than a direct read's buffer, to cross several reads and TLS records.
            var text = $"next {i} " + new string('x', 20_000);
            await tls.WriteAsync(RawFrames.Encode(RawFrame.Text, Encoding.UTF8.GetBytes(text)), timeout.Token);
            Assert.Equal(text, await ReadTextAsync(tls, timeout.Token));
        }
        Assert.Single(logs.Lines, l => l.Id.Id == WentDirectEvent);
        Assert.DoesNotContain(logs.Lines, l => l.Id.Id == TakenOverEvent); // the socket stays the connection's, under TLS

        // The client vanishes: the direct read fails, the tunnel ends and leaves the sweep.
        tcp.Client.LingerState = new LingerOption(true, 0);
        tcp.Close();
        var sweeper = gateway.Services.GetRequiredService<Gateway.Relay.KeepAliveSweeper>();
        await Retry.Eventually(() => Assert.Equal(0, sweeper.OpenTunnels), TimeSpan.FromSeconds(10));
    }

    private static JsonObject Config(Backend backend)
    {
        var config = RelayConfig.Build(backend.Address, RelayConfig.KeepAlive("00:00:30", "00:00:15"), path: "/echo", socketTakeover: true);
        config["Logging"]!["LogLevel"]!["Gateway.Relay"] = "Debug";
        return config;
    }

    private static async Task<string> ReadTextAsync(Stream stream, CancellationToken cancellationToken)
    {
        var frame = await ReadNonPingAsync(stream, cancellationToken);
        Assert.Equal(RawFrame.Text, frame.Opcode);
        return Encoding.UTF8.GetString(frame.Payload);
    }

    private static async Task<RawFrame> ReadNonPingAsync(Stream stream, CancellationToken cancellationToken)
    {
        while (true)
        {
            var frame = await RawFrames.ReadAsync(stream, expectMasked: false, cancellationToken);
            if (frame.Opcode != RawFrame.Ping)
            {
                return frame;
            }
        }
    }
}
