using System.Net.Security;
using System.Net.Sockets;
using System.Runtime.ExceptionServices;
using System.Text;
using System.Text.Json.Nodes;
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

        // A socket taken over after the 101 cancels nothing either: the transport's idle zero-byte receive is left to
        // end by itself, and the tunnel's first read waits for it.
        Assert.Equal(0, canceled);
        var scrape = await Retry.Eventually(async () =>
        {
            var metrics = await MetricsScrape.FetchAsync(gateway);
            Assert.Equal(21, metrics.Value("gateway_websocket_connections_closed_total", ("closed_by", "client"), ("code", "1000")));
            return metrics;
        }, TimeSpan.FromSeconds(5));
        Assert.Equal(0, scrape.Value("gateway_proxy_errors_total"));
    }

    [Fact]
    public async Task A_wss_tunnel_going_direct_after_its_client_paused_relays_without_cancelling_anything()
    {
        // Under TLS the tunnel goes direct: the transport's loops stop with the 101. A client that says nothing for a while
        // after it (the usual case) leaves the transport's receive loop parked in its idle receive, which must be left to
        // end by itself rather than cancelled, and whose end the tunnel's first read waits for.
        using var certificates = new TestCertificates();
        await using var backend = new RawBackend();
        var config = RelayConfig.Build(backend.Address, RelayConfig.KeepAlive("00:00:00", "00:00:01"), socketTakeover: true);
        var (certificate, key, _) = certificates.IssueServer("server", "localhost");
        config["Gateway"]!["Tls"]!["Certificates"] = new JsonArray(new JsonObject { ["Path"] = certificate, ["KeyPath"] = key });
        await using var gateway = await GatewayServer.StartAsync(config);

        var canceled = 0;
        void Count(object? sender, FirstChanceExceptionEventArgs e)
        {
            if (e.Exception is OperationCanceledException)
            {
                Interlocked.Increment(ref canceled);
            }
        }
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        try
        {
            // The first one warms the TLS path up (and is not counted).
            for (var i = 0; i <= 5; i++)
            {
                if (i == 1)
                {
                    AppDomain.CurrentDomain.FirstChanceException += Count;
                }
                using var tcp = new TcpClient { NoDelay = true };
                await tcp.ConnectAsync(gateway.Wss.Host, gateway.Wss.Port, timeout.Token);
                await using var tls = new SslStream(tcp.GetStream());
                await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
                {
                    TargetHost = "localhost",
                    ApplicationProtocols = [SslApplicationProtocol.Http11],
                    RemoteCertificateValidationCallback = certificates.Validate,
                }, timeout.Token);
                await tls.WriteAsync(Encoding.ASCII.GetBytes(
                    $"GET /raw/wss{i} HTTP/1.1\r\nHost: {gateway.Wss.Authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {RawFrames.NewKey()}\r\nSec-WebSocket-Version: 13\r\n\r\n"), timeout.Token);
                Assert.StartsWith("HTTP/1.1 101", await RawFrames.ReadHeadAsync(tls, timeout.Token));
                await Task.Delay(100, timeout.Token);
                await tls.WriteAsync(RawFrames.Encode(RawFrame.Text, "after a pause"u8), timeout.Token);
                var echo = await RawFrames.ReadAsync(tls, expectMasked: false, timeout.Token);
                Assert.Equal("after a pause", Encoding.UTF8.GetString(echo.Payload));
                await tls.WriteAsync(RawFrames.CloseFrame(1000, "done"), timeout.Token);
                Assert.Equal(RawFrame.Close, (await RawFrames.ReadAsync(tls, expectMasked: false, timeout.Token)).Opcode);
            }
        }
        finally
        {
            AppDomain.CurrentDomain.FirstChanceException -= Count;
        }
        Assert.Equal(0, canceled);
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
