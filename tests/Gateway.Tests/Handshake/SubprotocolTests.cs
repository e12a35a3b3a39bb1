using System.Net;
using System.Net.WebSockets;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Handshake;

/// <summary>
/// Subprotocol allow-lists (offered protocols outside the list never reach the backend; none left is 400 when one is
/// required) and a backend that picks a subprotocol nobody offered (502 to the client, no tunnel).
/// </summary>
public sealed class SubprotocolTests : IClassFixture<HandshakeFixture>
{
    private readonly HandshakeFixture _fixture;

    public SubprotocolTests(HandshakeFixture fixture) => _fixture = fixture;

    /// <summary>Route, offered Sec-WebSocket-Protocol ("" for none), status, what the backend saw (null: nothing forwarded or no header), what the client got.</summary>
    public static TheoryData<string, string, int, string?, string?> Offers() => new()
    {
        { "/proto", "chat.v1", 101, "chat.v1", "chat.v1" },
        { "/proto", "chat.v2, chat.v1", 101, "chat.v2, chat.v1", "chat.v2" },
        { "/proto", "x-unknown, chat.v1", 101, "chat.v1", "chat.v1" },
        { "/proto", "x-unknown, chat.v2, evil, chat.v1", 101, "chat.v2, chat.v1", "chat.v2" },
        { "/proto", "Chat.V1", 400, null, null },
        { "/proto", "x-unknown", 400, null, null },
        { "/proto", "", 400, null, null },
        // No allow-list: offers pass through untouched.
        { "/open", "x-anything, chat.v1", 101, "x-anything, chat.v1", "x-anything" },
        { "/open", "", 101, null, null },
    };

    [Theory]
    [MemberData(nameof(Offers))]
    public async Task Only_allowed_subprotocols_are_forwarded(string route, string offered, int status, string? forwarded, string? selected)
    {
        string[] edits = offered.Length == 0 ? [] : [$"Sec-WebSocket-Protocol: {offered}"];
        var path = $"{route}/{Guid.NewGuid():N}";
        var before = _fixture.Backend.Requests;
        var response = await RawConnection.SendAsync(_fixture.Gateway.Ws, RawRequest.Handshake(path, edits: edits));

        Assert.Equal(status, response.Status);
        if (status != 101)
        {
            Assert.Contains("subprotocol", response.Body);
            Assert.Equal(before, _fixture.Backend.Requests);
            return;
        }
        var seen = Assert.Single(_fixture.Backend.Seen, r => r.Path == path);
        Assert.Equal(forwarded, seen.Subprotocols);
        Assert.Equal(selected, response.Header("Sec-WebSocket-Protocol"));
    }

    [Theory]
    [InlineData("chat.v1")]
    [InlineData("")]
    public async Task A_backend_choosing_a_subprotocol_nobody_offered_gives_the_client_502(string offered)
    {
        string[] edits = offered.Length == 0 ? [] : [$"Sec-WebSocket-Protocol: {offered}"];
        await using var connection = await RawConnection.OpenAsync(_fixture.Gateway.Ws);
        var response = await connection.RoundTripAsync(RawRequest.Handshake("/liar/x", edits: edits));

        Assert.Equal(502, response.Status);
        Assert.Null(response.Header("Upgrade"));
        Assert.Null(response.Header("Sec-WebSocket-Accept"));
        Assert.Null(response.Header("Sec-WebSocket-Protocol"));
        Assert.Contains("subprotocol the client did not offer", response.Body);

        // The connection was not switched to a tunnel: it still speaks HTTP.
        var next = await connection.RoundTripAsync(RawRequest.Plain("/open/after"));
        Assert.Equal(200, next.Status);
    }

    [Theory]
    [InlineData(Transport.Ws)]
    [InlineData(Transport.WssHttp2)]
    public async Task ClientWebSocket_sees_502_rather_than_a_broken_connection(Transport transport)
    {
        var socket = new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        socket.Options.AddSubProtocol("chat.v1");
        using var timeout = new CancellationTokenSource(WebSocketClient.Timeout);
        if (transport == Transport.WssHttp2)
        {
            socket.Options.HttpVersion = HttpVersion.Version20;
            socket.Options.HttpVersionPolicy = HttpVersionPolicy.RequestVersionExact;
            var handler = new SocketsHttpHandler();
            handler.SslOptions.RemoteCertificateValidationCallback = _fixture.Certificates.Validate;
            await Assert.ThrowsAsync<WebSocketException>(() =>
                socket.ConnectAsync(new Uri(_fixture.Gateway.Wss, "liar/x"), new HttpMessageInvoker(handler), timeout.Token));
        }
        else
        {
            await Assert.ThrowsAsync<WebSocketException>(() => socket.ConnectAsync(new Uri(_fixture.Gateway.Ws, "liar/x"), timeout.Token));
        }
        Assert.Equal(HttpStatusCode.BadGateway, socket.HttpStatusCode);
        socket.Dispose();
    }

    [Fact]
    public async Task ClientWebSocket_gets_the_allowed_subprotocol()
    {
        using var socket = await WebSocketClient.ConnectAsync(_fixture.Gateway, Transport.WssHttp2, "/proto/echo", _fixture.Certificates,
            subprotocols: ["x-unknown", "chat.v2"]);
        Assert.Equal("chat.v2", socket.SubProtocol);
        await WebSocketClient.SendTextAsync(socket, "v2");
        Assert.Equal("v2", await WebSocketClient.ReceiveTextAsync(socket));
        await WebSocketClient.CloseAsync(socket);
    }
}
