using System.Net;
using System.Net.WebSockets;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Handshake;

/// <summary>
/// The same rules over HTTP/2 (TLS, ALPN h2), where a WebSocket is an extended CONNECT (RFC 8441): raw requests with
/// <c>:protocol</c> through <see cref="HttpClient"/>, and real <see cref="ClientWebSocket"/>s.
/// </summary>
public sealed class Http2HandshakeTests : IClassFixture<HandshakeFixture>
{
    private readonly HandshakeFixture _fixture;

    public Http2HandshakeTests(HandshakeFixture fixture) => _fixture = fixture;

    /// <summary>Method, :protocol (empty: none), path, headers ("Name: value"), expected status, header to check, its value.</summary>
    public static TheoryData<string, string, string, string[], int, string?, string?> Requests() => new()
    {
        { "CONNECT", "websocket", "/ws", [$"Origin: {HandshakeFixture.AllowedOrigin}", "Sec-WebSocket-Version: 13"], 200, null, null },
        { "CONNECT", "websocket", "/ws", [$"Origin: {HandshakeFixture.AllowedOrigin}", "Sec-WebSocket-Version: 8"], 426, "Sec-WebSocket-Version", "13" },
        { "CONNECT", "websocket", "/ws", [$"Origin: {HandshakeFixture.AllowedOrigin}"], 426, "Sec-WebSocket-Version", "13" },
        { "CONNECT", "webtransport", "/ws", [$"Origin: {HandshakeFixture.AllowedOrigin}", "Sec-WebSocket-Version: 13"], 400, null, null },
        { "CONNECT", "websocket", "/ws", ["Origin: https://evil-example.com", "Sec-WebSocket-Version: 13"], 403, null, null },
        { "CONNECT", "websocket", "/ws", ["Origin: https://example.com.evil.net", "Sec-WebSocket-Version: 13"], 403, null, null },
        { "CONNECT", "websocket", "/ws", ["Origin: null", "Sec-WebSocket-Version: 13"], 403, null, null },
        { "CONNECT", "websocket", "/ws", ["Sec-WebSocket-Version: 13"], 403, null, null },
        { "CONNECT", "websocket", "/ws", ["Origin: https://a.apps.example.net", "Sec-WebSocket-Version: 13"], 200, null, null },
        { "CONNECT", "websocket", "/open", ["Origin: https://evil-example.com", "Sec-WebSocket-Version: 13"], 403, null, null },
        { "CONNECT", "websocket", "/proto", ["Sec-WebSocket-Version: 13", "Sec-WebSocket-Protocol: x-unknown"], 400, null, null },
        { "GET", "", "/ws/page", [], 426, null, null },
        { "POST", "", "/ws/page", [], 405, "Allow", "CONNECT" },
        { "GET", "", "/open/page", [], 200, null, null },
    };

    [Theory]
    [MemberData(nameof(Requests))]
    public async Task Each_rule_holds_over_http2(string method, string protocol, string path, string[] headers, int status, string? header, string? value)
    {
        using var client = new HttpMessageInvoker(Handler());
        using var request = new HttpRequestMessage(new HttpMethod(method), new Uri(_fixture.Gateway.Https, path))
        {
            Version = HttpVersion.Version20,
            VersionPolicy = HttpVersionPolicy.RequestVersionExact,
        };
        if (protocol.Length > 0)
        {
            request.Headers.Protocol = protocol;
        }
        foreach (var line in headers)
        {
            var colon = line.IndexOf(':');
            request.Headers.TryAddWithoutValidation(line[..colon], line[(colon + 1)..].Trim());
        }
        if (method == "POST")
        {
            request.Content = new ByteArrayContent([]);
        }

        var before = _fixture.Backend.Requests;
        using var timeout = new CancellationTokenSource(WebSocketClient.Timeout);
        using var response = await client.SendAsync(request, timeout.Token);

        Assert.Equal(HttpVersion.Version20, response.Version);
        Assert.Equal(status, (int)response.StatusCode);
        if (header is not null)
        {
            Assert.Equal(value, string.Join(", ", response.Headers.TryGetValues(header, out var values) ? values : response.Content.Headers.GetValues(header)));
        }
        if (status == 200)
        {
            Assert.Equal(before + 1, _fixture.Backend.Requests);
            return;
        }
        Assert.Equal("text/plain; charset=utf-8", response.Content.Headers.ContentType?.ToString());
        Assert.StartsWith($"{status} ", await response.Content.ReadAsStringAsync(timeout.Token));
        Assert.Equal(before, _fixture.Backend.Requests);
    }

    [Fact]
    public async Task A_websocket_over_http2_from_an_allowed_origin_works_and_a_foreign_one_gets_403()
    {
        using (var socket = await ConnectAsync("/ws/echo", HandshakeFixture.AllowedOrigin))
        {
            Assert.Equal(HttpStatusCode.OK, socket.HttpStatusCode);
            await WebSocketClient.SendTextAsync(socket, "over h2");
            Assert.Equal("over h2", await WebSocketClient.ReceiveTextAsync(socket));
            await WebSocketClient.CloseAsync(socket);
        }

        var before = _fixture.Backend.Requests;
        var refused = new ClientWebSocket();
        var failure = await Assert.ThrowsAsync<WebSocketException>(() => ConnectAsync("/ws/echo", "https://evil-example.com", refused));
        Assert.Equal(HttpStatusCode.Forbidden, refused.HttpStatusCode);
        Assert.Equal(before, _fixture.Backend.Requests);
        refused.Dispose();
        Assert.NotNull(failure);
    }

    private async Task<ClientWebSocket> ConnectAsync(string path, string origin, ClientWebSocket? socket = null)
    {
        socket ??= new ClientWebSocket();
        socket.Options.CollectHttpResponseDetails = true;
        socket.Options.HttpVersion = HttpVersion.Version20;
        socket.Options.HttpVersionPolicy = HttpVersionPolicy.RequestVersionExact;
        socket.Options.SetRequestHeader("Origin", origin);
        using var timeout = new CancellationTokenSource(WebSocketClient.Timeout);
        await socket.ConnectAsync(new Uri(_fixture.Gateway.Wss, path.TrimStart('/')), new HttpMessageInvoker(Handler()), timeout.Token);
        return socket;
    }

    private SocketsHttpHandler Handler()
    {
        var handler = new SocketsHttpHandler();
        handler.SslOptions.RemoteCertificateValidationCallback = _fixture.Certificates.Validate;
        return handler;
    }
}
