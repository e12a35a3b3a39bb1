using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Gateway.Tests.Infrastructure;
using Gateway.Tests.Relay;

namespace Gateway.Tests.Listeners;

/// <summary>
/// A request with an empty Host (RFC 9112 section 3.2 allows it when the target has no authority) is forwarded with the
/// destination's authority in its one Host line, as a request with any other Host is: never with two Host lines.
/// </summary>
public sealed class EmptyHostTests
{
    [Theory]
    [InlineData(true, "GET /raw/plain HTTP/1.1\r\nHost:\r\nX-Case: plain\r\n\r\n")]
    [InlineData(false, "GET /raw/plain HTTP/1.1\r\nHost:\r\nX-Case: plain\r\n\r\n")]
    [InlineData(true, "GET /raw/ws HTTP/1.1\r\nHost:\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")]
    [InlineData(false, "GET /raw/ws HTTP/1.1\r\nHost:\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")]
    public async Task An_empty_Host_reaches_the_backend_as_one_Host_line(bool lean, string request)
    {
        await using var backend = new RawBackend();
        var config = RelayConfig.Build(backend.Address, new JsonObject());
        config["Gateway"]!["LeanUpgrades"] = lean;
        await using var gateway = await GatewayServer.StartAsync(config);

        using var tcp = new TcpClient();
        await tcp.ConnectAsync(gateway.Ws.Host, gateway.Ws.Port);
        var stream = tcp.GetStream();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        await stream.WriteAsync(Encoding.ASCII.GetBytes(request), timeout.Token);
        // Whatever the answer (the raw backend answers only upgrades), the head has reached the backend by then.
        await RawFrames.ReadHeadAsync(stream, timeout.Token);

        Assert.True(backend.Heads.TryDequeue(out var head), "the request did not reach the backend");
        var hosts = head.Split("\r\n").Where(line => line.StartsWith("Host:", StringComparison.OrdinalIgnoreCase)).ToArray();
        Assert.True(hosts.Length == 1, $"the backend got {hosts.Length} Host lines:\n{head}");
        Assert.Equal($"Host: {backend.Address.Authority}", hosts[0]);
    }
}
