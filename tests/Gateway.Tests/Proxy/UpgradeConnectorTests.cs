using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using Gateway.Tests.Infrastructure;
using Gateway.Tests.Relay;

namespace Gateway.Tests.Proxy;

/// <summary>
/// The backend leg of a WebSocket is opened by the gateway's own connector (Proxy/UpgradeConnector), not by
/// SocketsHttpHandler: these rows script a backend byte by byte to check what it sends and how it reads the answer.
/// </summary>
public sealed partial class UpgradeConnectorTests
{
    [Fact]
    public async Task The_request_head_is_well_formed_and_a_frame_sent_with_the_101_reaches_the_client()
    {
        string? requestHead = null;
        await using var backend = new ScriptedBackend(async (stream, head) =>
        {
            requestHead = head;
            // The first frame in the same write as the head: it arrives with it, in the connector's head buffer.
            await stream.WriteAsync(SwitchingProtocols(head).Concat(RawFrames.Encode(RawFrame.Text, "welcome"u8, mask: false)).ToArray());
            var frame = await RawFrames.ReadAsync(stream, expectMasked: true, CancellationToken.None);
            await stream.WriteAsync(RawFrames.Encode(RawFrame.Text, frame.Payload, mask: false));
        });
        await using var gateway = await GatewayServer.StartAsync(RelayConfig.Build(backend.Address, RelayConfig.KeepAlive("00:00:00", "00:00:01")));
        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/room?x=1");

        Assert.Equal("welcome", Encoding.UTF8.GetString((await client.ReceiveAsync())!.Payload));
        await client.SendAsync(RawFrames.Encode(RawFrame.Text, "echo me"u8));
        Assert.Equal("echo me", Encoding.UTF8.GetString((await client.ReceiveAsync())!.Payload));

        Assert.NotNull(requestHead);
        Assert.StartsWith("GET /raw/room?x=1 HTTP/1.1\r\nHost: ", requestHead);
        Assert.Matches("(?im)^Upgrade: websocket\r$", requestHead);
        Assert.Matches("(?im)^Connection: Upgrade\r$", requestHead);
        Assert.Matches("(?im)^Sec-WebSocket-Version: 13\r$", requestHead);
        Assert.Matches("(?im)^X-Forwarded-For: 127.0.0.1\r$", requestHead);
    }

    [Fact]
    public async Task Heads_longer_than_the_connectors_first_buffer_go_through_whole_both_ways()
    {
        // 4 KiB is the connector's first buffer for each head; these are twice and four times that.
        var cookie = "c=" + new string('q', 8_000);
        var backendHeader = new string('b', 16_000);
        string? requestHead = null;
        await using var backend = new ScriptedBackend(async (stream, head) =>
        {
            requestHead = head;
            var accept = Encoding.ASCII.GetString(SwitchingProtocols(head));
            var longAnswer = accept[..^2] + $"X-Long: {backendHeader}\r\n\r\n";
            await stream.WriteAsync(Encoding.ASCII.GetBytes(longAnswer).Concat(RawFrames.Encode(RawFrame.Text, "after a long head"u8, mask: false)).ToArray());
            var frame = await RawFrames.ReadAsync(stream, expectMasked: true, CancellationToken.None);
            await stream.WriteAsync(RawFrames.Encode(RawFrame.Text, frame.Payload, mask: false));
        });
        await using var gateway = await GatewayServer.StartAsync(RelayConfig.Build(backend.Address, RelayConfig.KeepAlive("00:00:00", "00:00:01")));
        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/long", $"Cookie: {cookie}");

        Assert.Equal("after a long head", Encoding.UTF8.GetString((await client.ReceiveAsync())!.Payload));
        await client.SendAsync(RawFrames.Encode(RawFrame.Text, "and back"u8));
        Assert.Equal("and back", Encoding.UTF8.GetString((await client.ReceiveAsync())!.Payload));
        Assert.Matches($"(?im)^Cookie: {cookie}\r$", requestHead);
        Assert.EndsWith("\r\n\r\n", requestHead);
    }

    [Fact]
    public async Task An_ipv6_destination_is_reached_with_a_bracketed_host()
    {
        string? requestHead = null;
        await using var backend = new ScriptedBackend(async (stream, head) =>
        {
            requestHead = head;
            await stream.WriteAsync(SwitchingProtocols(head));
            var frame = await RawFrames.ReadAsync(stream, expectMasked: true, CancellationToken.None);
            await stream.WriteAsync(RawFrames.Encode(RawFrame.Text, frame.Payload, mask: false));
        }, IPAddress.IPv6Loopback);
        await using var gateway = await GatewayServer.StartAsync(RelayConfig.Build(backend.Address, RelayConfig.KeepAlive("00:00:00", "00:00:01")));
        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/v6");

        await client.SendAsync(RawFrames.Encode(RawFrame.Text, "over ::1"u8));
        Assert.Equal("over ::1", Encoding.UTF8.GetString((await client.ReceiveAsync())!.Payload));
        Assert.Matches($@"(?im)^Host: \[::1\]:{backend.Address.Port}\r$", requestHead);
    }

    [Theory]
    [InlineData("HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nno, \r\n7;ext=1\r\nthanks.\r\n0\r\nX-Trailer: t\r\n\r\n", 403, "no, thanks.")]
    [InlineData("HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot here!", 404, "not here!")]
    [InlineData("HTTP/1.1 500 Oops\r\nConnection: close\r\n\r\nbroken until close", 500, "broken until close")]
    [InlineData("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n", 400, "")]
    public async Task A_backend_that_refuses_the_upgrade_is_answered_with_its_own_status_and_body(string response, int status, string body)
    {
        await using var backend = new ScriptedBackend(async (stream, _) => await stream.WriteAsync(Encoding.ASCII.GetBytes(response)));
        await using var gateway = await GatewayServer.StartAsync(RelayConfig.Build(backend.Address, RelayConfig.KeepAlive("00:00:00", "00:00:01")));

        var (head, content) = await HandshakeAsync(gateway.Ws);

        Assert.StartsWith($"HTTP/1.1 {status} ", head);
        Assert.Equal(body, content);
    }

    [Theory]
    [InlineData("SSH-2.0-OpenSSH_9.2\r\n\r\n")]
    [InlineData("HTTP/1.1 101 Switching Protocols\r\nbroken header line\r\n\r\n")]
    [InlineData("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab")] // closes two bytes into a five-byte body
    public async Task A_backend_that_answers_nonsense_gets_the_client_a_502(string response)
    {
        await using var backend = new ScriptedBackend(async (stream, _) => await stream.WriteAsync(Encoding.ASCII.GetBytes(response)));
        await using var gateway = await GatewayServer.StartAsync(RelayConfig.Build(backend.Address, RelayConfig.KeepAlive("00:00:00", "00:00:01")));

        var (head, _) = await HandshakeAsync(gateway.Ws);

        Assert.StartsWith("HTTP/1.1 502 ", head);
    }

    /// <summary>A raw handshake; returns the response head and the body (by Content-Length, or what arrives before the connection goes quiet).</summary>
    private static async Task<(string Head, string Body)> HandshakeAsync(Uri gateway)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(gateway.Host, gateway.Port);
        var stream = tcp.GetStream();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            $"GET /raw/x HTTP/1.1\r\nHost: {gateway.Authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
            $"Sec-WebSocket-Key: {RawFrames.NewKey()}\r\nSec-WebSocket-Version: 13\r\n\r\n"), timeout.Token);
        var head = await RawFrames.ReadHeadAsync(stream, timeout.Token);
        var length = ContentLength().Match(head);
        var body = new byte[length.Success ? int.Parse(length.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) : 0];
        await stream.ReadExactlyAsync(body, timeout.Token);
        return (head, Encoding.UTF8.GetString(body));
    }

    /// <summary>The 101 a backend answers the request head with.</summary>
    private static byte[] SwitchingProtocols(string requestHead) => Encoding.ASCII.GetBytes(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        $"Sec-WebSocket-Accept: {RawFrames.AcceptFor(KeyHeader().Match(requestHead).Groups[1].Value)}\r\n\r\n");

    [GeneratedRegex(@"(?im)^Sec-WebSocket-Key: (\S+)\r$")]
    private static partial Regex KeyHeader();

    [GeneratedRegex(@"(?im)^Content-Length: (\d+)\r$")]
    private static partial Regex ContentLength();

    /// <summary>A TCP backend that reads one request head and runs a script on the connection.</summary>
    private sealed class ScriptedBackend : IAsyncDisposable
    {
        private readonly TcpListener _listener;
        private readonly CancellationTokenSource _stop = new();
        private readonly Task _accepting;

        public ScriptedBackend(Func<NetworkStream, string, Task> script, IPAddress? address = null)
        {
            address ??= IPAddress.Loopback;
            _listener = new TcpListener(address, 0);
            _listener.Start();
            var host = address.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{address}]" : address.ToString();
            Address = new Uri($"http://{host}:{((IPEndPoint)_listener.LocalEndpoint).Port}/");
            _accepting = Task.Run(async () =>
            {
                while (!_stop.IsCancellationRequested)
                {
                    TcpClient client;
                    try
                    {
                        client = await _listener.AcceptTcpClientAsync(_stop.Token);
                    }
                    catch (OperationCanceledException)
                    {
                        return;
                    }
                    _ = Task.Run(async () =>
                    {
                        using (client)
                        {
                            try
                            {
                                var stream = client.GetStream();
                                var head = await RawFrames.ReadHeadAsync(stream, _stop.Token);
                                await script(stream, head);
                                await Task.Delay(200);
                            }
                            catch (Exception ex) when (ex is IOException or OperationCanceledException or SocketException)
                            {
                            }
                        }
                    });
                }
            });
        }

        public Uri Address { get; }

        public async ValueTask DisposeAsync()
        {
            _stop.Cancel();
            _listener.Stop();
            await _accepting;
            _stop.Dispose();
        }
    }
}
