using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Relay;

/// <summary>Messages through the gateway over ws, wss (HTTP/1.1) and wss over HTTP/2, to a real echo backend.</summary>
public sealed class RelayTests : IAsyncLifetime
{
    private readonly TestCertificates _certificates = new();
    private Backend _backend = null!;
    private GatewayServer _gateway = null!;

    public async Task InitializeAsync()
    {
        _backend = await Backend.StartAsync("echo-1");
        var (certificate, key, _) = _certificates.IssueServer("server", "localhost");
        var proxy = GatewayServer.Proxy([("echo", "/echo", "echo")], [("echo", [_backend])]);
        _gateway = await GatewayServer.StartAsync(GatewayServer.Config(proxy, [new JsonObject { ["Path"] = certificate, ["KeyPath"] = key }]));
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _backend.DisposeAsync();
        _certificates.Dispose();
    }

    public static TheoryData<Transport, int, WebSocketMessageType> Messages()
    {
        var data = new TheoryData<Transport, int, WebSocketMessageType>();
        foreach (var transport in Enum.GetValues<Transport>())
        {
            foreach (var size in new[] { 0, 17, 1024 * 1024 })
            {
                data.Add(transport, size, WebSocketMessageType.Text);
                data.Add(transport, size, WebSocketMessageType.Binary);
            }
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Messages))]
    public async Task Message_comes_back_intact_and_close_is_clean(Transport transport, int size, WebSocketMessageType type)
    {
        using var socket = await WebSocketClient.ConnectAsync(_gateway, transport, "/echo", _certificates);
        var payload = type == WebSocketMessageType.Text
            ? Encoding.UTF8.GetBytes(RandomText(size))
            : RandomNumberGenerator.GetBytes(size);

        // Twice, so the tunnel is shown to carry more than one message.
        for (var i = 0; i < 2; i++)
        {
            await WebSocketClient.SendAsync(socket, payload, type);
            var (receivedType, received) = await WebSocketClient.ReceiveAsync(socket);
            Assert.Equal(type, receivedType);
            Assert.Equal(payload.Length, received.Length);
            Assert.True(payload.AsSpan().SequenceEqual(received), "payload changed on the way");
        }

        Assert.Equal(WebSocketCloseStatus.NormalClosure, await WebSocketClient.CloseAsync(socket));
        Assert.Equal(WebSocketState.Closed, socket.State);
    }

    [Theory]
    [InlineData(Transport.Ws)]
    [InlineData(Transport.WssHttp11)]
    [InlineData(Transport.WssHttp2)]
    public async Task Upgrade_reaches_the_backend_over_each_transport(Transport transport)
    {
        using var socket = await WebSocketClient.ConnectAsync(_gateway, transport, "/echo", _certificates);
        var expected = transport == Transport.WssHttp2 ? System.Net.HttpStatusCode.OK : System.Net.HttpStatusCode.SwitchingProtocols;
        Assert.Equal(expected, socket.HttpStatusCode);
        await WebSocketClient.SendTextAsync(socket, "hello");
        Assert.Equal("hello", await WebSocketClient.ReceiveTextAsync(socket));
        await WebSocketClient.CloseAsync(socket);
    }

    [Fact]
    public async Task Many_concurrent_tunnels_stay_separate()
    {
        var sockets = await Task.WhenAll(Enumerable.Range(0, 20).Select(i =>
            WebSocketClient.ConnectAsync(_gateway, (Transport)(i % 3), "/echo", _certificates)));
        try
        {
            await Task.WhenAll(sockets.Select(async (socket, i) =>
            {
                for (var m = 0; m < 5; m++)
                {
                    var text = $"client {i} message {m}";
                    await WebSocketClient.SendTextAsync(socket, text);
                    Assert.Equal(text, await WebSocketClient.ReceiveTextAsync(socket));
                }
            }));
        }
        finally
        {
            await Task.WhenAll(sockets.Select(WebSocketClient.CloseAsync));
            foreach (var socket in sockets)
            {
                socket.Dispose();
            }
        }
    }

    private static string RandomText(int length)
    {
        // Multi-byte characters too, so the UTF-8 payload is checked byte for byte.
        const string alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 äöüßπ€";
        var chars = new char[length];
        for (var i = 0; i < length; i++)
        {
            chars[i] = alphabet[RandomNumberGenerator.GetInt32(alphabet.Length)];
        }
        return new string(chars);
    }
}
