using System.Net;
using System.Net.WebSockets;
using System.Text.Json.Nodes;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Proxy;

public sealed class RoutingTests
{
    [Fact]
    public async Task Each_path_reaches_its_own_cluster()
    {
        await using var a = await Backend.StartAsync("alpha-1");
        await using var b = await Backend.StartAsync("beta-1");
        var proxy = GatewayServer.Proxy(
            [("alpha", "/alpha", "alpha"), ("beta", "/beta", "beta")],
            [("alpha", [a]), ("beta", [b])]);
        StripPrefix(proxy, "alpha");
        StripPrefix(proxy, "beta");
        await using var gateway = await GatewayServer.StartAsync(GatewayServer.Config(proxy));

        for (var i = 0; i < 3; i++)
        {
            using var toAlpha = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/alpha/chat/lobby");
            using var toBeta = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/beta/chat/lobby");
            Assert.Equal("alpha-1", await WebSocketClient.ReceiveWelcomeBackendAsync(toAlpha));
            Assert.Equal("beta-1", await WebSocketClient.ReceiveWelcomeBackendAsync(toBeta));
            await WebSocketClient.CloseAsync(toAlpha);
            await WebSocketClient.CloseAsync(toBeta);
        }

        // A path no route matches is not forwarded anywhere.
        using var http = new HttpClient();
        var response = await http.GetAsync(new Uri(gateway.Http, "/gamma/chat/lobby"));
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    [Fact]
    public async Task Subprotocol_negotiation_passes_through_end_to_end()
    {
        await using var backend = await Backend.StartAsync("proto-1");
        var proxy = GatewayServer.Proxy([("chat", "/chat", "chat")], [("chat", [backend])]);
        await using var gateway = await GatewayServer.StartAsync(GatewayServer.Config(proxy));

        using (var socket = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/chat/lobby", subprotocols: ["x-unknown", "chat.v1"]))
        {
            Assert.Equal("chat.v1", socket.SubProtocol);
            Assert.Equal("proto-1", await WebSocketClient.ReceiveWelcomeBackendAsync(socket));
            await WebSocketClient.CloseAsync(socket);
        }

        using (var socket = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/chat/lobby", subprotocols: ["chat.v2", "chat.v1"]))
        {
            Assert.Equal("chat.v2", socket.SubProtocol);
            await WebSocketClient.CloseAsync(socket);
        }

        using (var socket = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/chat/lobby"))
        {
            Assert.Null(socket.SubProtocol);
            await WebSocketClient.CloseAsync(socket);
        }
    }

    [Fact]
    public async Task Chat_messages_are_broadcast_to_the_room_through_the_gateway()
    {
        await using var backend = await Backend.StartAsync("room-1");
        var proxy = GatewayServer.Proxy([("chat", "/chat", "chat")], [("chat", [backend])]);
        await using var gateway = await GatewayServer.StartAsync(GatewayServer.Config(proxy));

        using var first = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/chat/room42");
        await WebSocketClient.ReceiveWelcomeBackendAsync(first);
        using var second = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/chat/room42");
        await WebSocketClient.ReceiveWelcomeBackendAsync(second);

        await WebSocketClient.SendTextAsync(first, "hi from first");
        Assert.Equal("hi from first", await WebSocketClient.ReceiveTextAsync(second));
        Assert.Equal("hi from first", await WebSocketClient.ReceiveTextAsync(first));
        Assert.Equal(WebSocketCloseStatus.NormalClosure, await WebSocketClient.CloseAsync(first));
        Assert.Equal(WebSocketCloseStatus.NormalClosure, await WebSocketClient.CloseAsync(second));
    }

    private static void StripPrefix(JsonObject proxy, string route) =>
        proxy["Routes"]![route]!["Transforms"] = new JsonArray(new JsonObject { ["PathRemovePrefix"] = $"/{route}" });
}
