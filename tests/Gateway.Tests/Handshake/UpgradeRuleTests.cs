namespace Gateway.Tests.Handshake;

/// <summary>
/// RFC 6455 section 4.2.1 over raw HTTP/1.1: one row per rule, each asserting the status, the header the rule calls
/// for, a text body, and that the backend received nothing (or, for valid handshakes, exactly one request).
/// </summary>
public sealed class UpgradeRuleTests : IClassFixture<HandshakeFixture>
{
    private readonly HandshakeFixture _fixture;

    public UpgradeRuleTests(HandshakeFixture fixture) => _fixture = fixture;

    private static string Ws(params string[] edits) => Ws("GET", "HTTP/1.1", edits);

    private static string Ws(string method, string version, params string[] edits) =>
        RawRequest.Handshake("/ws", method, version, [$"Origin: {HandshakeFixture.AllowedOrigin}", .. edits]);

    public static TheoryData<string, string, int, string?, string?> Rules() => new()
    {
        { "valid handshake", Ws(), 101, "Upgrade", "websocket" },
        { "Upgrade token in another case", Ws("Upgrade: WebSocket"), 101, null, null },
        { "Upgrade with websocket among other tokens", Ws("Upgrade: foo/2, websocket"), 101, null, null },
        { "Connection with several tokens", Ws("Connection: keep-alive, Upgrade"), 101, null, null },
        { "Connection token in upper case", Ws("Connection: UPGRADE"), 101, null, null },
        { "method POST", Ws("POST", "HTTP/1.1", "Content-Length: 0"), 405, "Allow", "GET" },
        { "method PUT", Ws("PUT", "HTTP/1.1", "Content-Length: 0"), 405, "Allow", "GET" },
        { "HTTP/1.0", Ws("GET", "HTTP/1.0"), 400, null, null },
        { "no Upgrade header", Ws("-Upgrade"), 400, null, null },
        { "Upgrade to another protocol", Ws("Upgrade: h2c"), 400, null, null },
        { "no Connection header", Ws("-Connection"), 400, null, null },
        { "Connection without upgrade", Ws("Connection: keep-alive"), 400, null, null },
        { "Connection with upgrade as a substring only", Ws("Connection: upgraded"), 400, null, null },
        { "no Sec-WebSocket-Key", Ws("-Sec-WebSocket-Key"), 400, null, null },
        { "key not base64", Ws("Sec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!=="), 400, null, null },
        { "key of 15 bytes", Ws($"Sec-WebSocket-Key: {Convert.ToBase64String(new byte[15])}"), 400, null, null },
        { "key of 17 bytes", Ws($"Sec-WebSocket-Key: {Convert.ToBase64String(new byte[17])}"), 400, null, null },
        { "key too short", Ws("Sec-WebSocket-Key: abc"), 400, null, null },
        { "two keys", Ws($"+Sec-WebSocket-Key: {RawRequest.ValidKey}"), 400, null, null },
        { "no Sec-WebSocket-Version", Ws("-Sec-WebSocket-Version"), 426, "Sec-WebSocket-Version", "13" },
        { "version 8", Ws("Sec-WebSocket-Version: 8"), 426, "Sec-WebSocket-Version", "13" },
        { "versions 13 and 8", Ws("Sec-WebSocket-Version: 13, 8"), 426, "Sec-WebSocket-Version", "13" },
        { "plain GET on a WebSocket-only route", RawRequest.Plain("/ws/page"), 426, "Upgrade", "websocket" },
        { "plain POST on a WebSocket-only route", RawRequest.Plain("/ws/page", "POST"), 405, "Allow", "GET" },
        { "HEAD on a WebSocket-only route", RawRequest.Plain("/ws/page", "HEAD"), 405, "Allow", "GET" },
        { "plain GET where plain HTTP is allowed", RawRequest.Plain("/open/page"), 200, null, null },
        { "bad key where plain HTTP is allowed", RawRequest.Handshake("/open", edits: ["Sec-WebSocket-Key: abc"]), 400, null, null },
        { "bad version where plain HTTP is allowed", RawRequest.Handshake("/open", edits: ["Sec-WebSocket-Version: 7"]), 426, "Sec-WebSocket-Version", "13" },
        { "POST with Upgrade where plain HTTP is allowed", RawRequest.Handshake("/open", "POST", edits: ["Content-Length: 0"]), 405, "Allow", "GET" },
    };

    [Theory]
    [MemberData(nameof(Rules))]
    public async Task Each_rule_answers_with_its_status_before_any_backend_is_contacted(string rule, string request, int status, string? header, string? value)
    {
        var before = _fixture.Backend.Requests;
        var response = await RawConnection.SendAsync(_fixture.Gateway.Ws, request);

        Assert.True(status == response.Status, $"{rule}: expected {status}, got {response.Status} {response.Body}");
        if (header is not null)
        {
            Assert.Equal(value, response.Header(header));
        }
        if (status is 101 or 200)
        {
            Assert.Equal(before + 1, _fixture.Backend.Requests);
            return;
        }
        Assert.Equal("text/plain; charset=utf-8", response.Header("Content-Type"));
        if (!request.StartsWith("HEAD ", StringComparison.Ordinal))
        {
            Assert.StartsWith($"{status} ", response.Body);
        }
        Assert.Equal(before, _fixture.Backend.Requests);
    }

    [Fact]
    public async Task A_valid_handshake_is_answered_by_the_backend_with_a_working_tunnel()
    {
        using var socket = await Infrastructure.WebSocketClient.ConnectAsync(_fixture.Gateway, Infrastructure.Transport.Ws, "/open/echo");
        await Infrastructure.WebSocketClient.SendTextAsync(socket, "through the gate");
        Assert.Equal("through the gate", await Infrastructure.WebSocketClient.ReceiveTextAsync(socket));
        await Infrastructure.WebSocketClient.CloseAsync(socket);
    }
}
