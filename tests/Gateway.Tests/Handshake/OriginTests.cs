namespace Gateway.Tests.Handshake;

/// <summary>The Origin rules over raw HTTP/1.1, one row per Origin variant and policy; refusals are 403 before any backend.</summary>
public sealed class OriginTests : IClassFixture<HandshakeFixture>
{
    private readonly HandshakeFixture _fixture;

    public OriginTests(HandshakeFixture fixture) => _fixture = fixture;

    /// <summary>Route, Origin header ("(missing)" for none, "a | b" for two header lines), Host header, expected status.</summary>
    public static TheoryData<string, string, string, int> Origins() => new()
    {
        // /ws: exact https://chat.example.com, wildcard https://*.apps.example.net, http://localhost:8080; Origin required.
        { "/ws", "https://chat.example.com", "gateway.test", 101 },
        { "/ws", "HTTPS://Chat.Example.COM", "gateway.test", 101 },
        { "/ws", "https://chat.example.com:443", "gateway.test", 101 },
        { "/ws", "https://chat.example.com:8443", "gateway.test", 403 },
        { "/ws", "http://chat.example.com", "gateway.test", 403 },
        { "/ws", "https://evil-example.com", "gateway.test", 403 },
        { "/ws", "https://example.com.evil.net", "gateway.test", 403 },
        { "/ws", "https://chat.example.com.evil.net", "gateway.test", 403 },
        { "/ws", "https://evilchat.example.com", "gateway.test", 403 },
        { "/ws", "https://a.apps.example.net", "gateway.test", 101 },
        { "/ws", "https://b.a.apps.example.net", "gateway.test", 101 },
        { "/ws", "https://apps.example.net", "gateway.test", 403 },
        { "/ws", "https://evil-apps.example.net", "gateway.test", 403 },
        { "/ws", "https://apps.example.net.evil.com", "gateway.test", 403 },
        { "/ws", "https://a.apps.example.net:444", "gateway.test", 403 },
        { "/ws", "http://localhost:8080", "gateway.test", 101 },
        { "/ws", "http://localhost", "gateway.test", 403 },
        { "/ws", "http://localhost:8081", "gateway.test", 403 },
        { "/ws", "null", "gateway.test", 403 },
        { "/ws", "(missing)", "gateway.test", 403 },
        { "/ws", "", "gateway.test", 403 },
        { "/ws", "https://chat.example.com/", "gateway.test", 403 },
        { "/ws", "https://chat.example.com/path", "gateway.test", 403 },
        { "/ws", "chat.example.com", "gateway.test", 403 },
        { "/ws", "https://user@chat.example.com", "gateway.test", 403 },
        { "/ws", "https://*.apps.example.net", "gateway.test", 403 },
        { "/ws", "https://chat.example.com | https://chat.example.com", "gateway.test", 403 },
        // /open: the default policy, same origin as the Host the client addressed; no Origin is fine (not a browser).
        { "/open", "(missing)", "gateway.test", 101 },
        { "/open", "https://gateway.test", "gateway.test", 101 },
        { "/open", "http://GATEWAY.test", "gateway.test", 101 },
        { "/open", "http://gateway.test:8080", "gateway.test:8080", 101 },
        { "/open", "https://gateway.test:443", "gateway.test", 101 },
        { "/open", "http://gateway.test:8081", "gateway.test:8080", 403 },
        { "/open", "http://gateway.test", "gateway.test:8080", 403 },
        { "/open", "https://evil-example.com", "gateway.test", 403 },
        { "/open", "https://gateway.test.evil.net", "gateway.test", 403 },
        { "/open", "null", "gateway.test", 403 },
        { "/open", "http://[::1]:8080", "[::1]:8080", 101 },
        // /sandbox lists null; /any lists * (which does not include null).
        { "/sandbox", "null", "gateway.test", 101 },
        { "/sandbox", "https://chat.example.com", "gateway.test", 403 },
        { "/any", "https://evil-example.com", "gateway.test", 101 },
        { "/any", "null", "gateway.test", 403 },
        { "/any", "not an origin", "gateway.test", 403 },
    };

    [Theory]
    [MemberData(nameof(Origins))]
    public async Task Origin_is_checked_against_the_route_policy(string route, string origin, string host, int status)
    {
        var edits = new List<string> { $"Host: {host}" };
        if (origin != "(missing)")
        {
            var lines = origin.Split(" | ");
            edits.Add($"Origin: {lines[0]}");
            edits.AddRange(lines.Skip(1).Select(line => $"+Origin: {line}"));
        }
        var before = _fixture.Backend.Requests;
        var response = await RawConnection.SendAsync(_fixture.Gateway.Ws, RawRequest.Handshake(route, edits: [.. edits]));

        Assert.True(status == response.Status, $"{route} Origin '{origin}': expected {status}, got {response.Status} {response.Body}");
        Assert.Equal(status == 101 ? before + 1 : before, _fixture.Backend.Requests);
        if (status == 403)
        {
            Assert.Contains("Origin", response.Body);
        }
    }
}
