using System.Buffers.Text;
using System.Text;
using Gateway.Tests.Handshake;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Identity;

/// <summary>
/// Identity at the edge on real sockets: a valid token through each carrier reaches the backend as claim headers; a bad
/// one is refused with 401 before any backend is contacted; forged claim headers never reach the backend; the token never
/// shows in the backend's request line, the bearer subprotocol never reaches it, and nothing the gateway logs holds it.
/// </summary>
public sealed class IdentityTests : IClassFixture<IdentityFixture>
{
    private readonly IdentityFixture _fixture;

    public IdentityTests(IdentityFixture fixture) => _fixture = fixture;

    public enum Carrier { Header, Query, Cookie, Subprotocol }

    private static string Path(string route) => $"/{route}/{Guid.NewGuid():N}";

    /// <summary>The request path (with a query for that carrier) and the header lines that carry <paramref name="token"/>.</summary>
    private static (string Target, string[] Headers) Carry(Carrier carrier, string path, string token) => carrier switch
    {
        Carrier.Header => (path, [$"Authorization: Bearer {token}"]),
        Carrier.Query => ($"{path}?room=7&access_token={token}&lang=en", []),
        Carrier.Cookie => (path, [$"Cookie: theme=dark; token={token}"]),
        _ => (path, [$"Sec-WebSocket-Protocol: chat.v1, base64url.bearer.authorization.k8s.io.{Base64Url.EncodeToString(Encoding.UTF8.GetBytes(token))}"]),
    };

    public static TheoryData<Carrier, bool, TestTokens.Signer> Carriers()
    {
        var data = new TheoryData<Carrier, bool, TestTokens.Signer>();
        foreach (var carrier in Enum.GetValues<Carrier>())
        {
            data.Add(carrier, true, TestTokens.Signer.Rsa);
            data.Add(carrier, false, TestTokens.Signer.Rsa);
        }
        data.Add(Carrier.Header, true, TestTokens.Signer.Ec);
        data.Add(Carrier.Query, false, TestTokens.Signer.Hmac);
        return data;
    }

    [Theory]
    [MemberData(nameof(Carriers))]
    public async Task A_valid_token_through_each_carrier_reaches_the_backend_as_claim_headers_and_never_in_the_request_line(Carrier carrier, bool lean, TestTokens.Signer signer)
    {
        var gateway = _fixture.Gateway(lean);
        var path = Path("id");
        var token = _fixture.Tokens.Create("alice", signer);
        var (target, headers) = Carry(carrier, path, token);

        await using (var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, target, headers))
        {
            await client.SendAsync(RawFrames.Encode(RawFrame.Text, "hello"u8));
            Assert.Equal("hello", Encoding.UTF8.GetString((await client.ReceiveAsync(TimeSpan.FromSeconds(5)))!.Payload));
            // The backend chose no subprotocol: the bearer one was never offered to it.
            Assert.DoesNotContain("Sec-WebSocket-Protocol", client.Response, StringComparison.OrdinalIgnoreCase);
        }

        var head = _fixture.HeadFor(path);
        var lines = head.Split("\r\n");
        Assert.Contains("X-User-Id: alice", lines, StringComparer.OrdinalIgnoreCase);
        Assert.DoesNotContain(lines, l => l.StartsWith("X-User-Id", StringComparison.OrdinalIgnoreCase) && !l.EndsWith("alice", StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => l.StartsWith("X-User-Role", StringComparison.OrdinalIgnoreCase));
        Assert.DoesNotContain(token, lines[0]);
        Assert.DoesNotContain("access_token", lines[0]);
        Assert.DoesNotContain("bearer.authorization.k8s.io", head);
        if (carrier == Carrier.Query)
        {
            // The other parameters stay as they were.
            Assert.EndsWith($"{path}?room=7&lang=en HTTP/1.1", lines[0]);
        }
        if (carrier == Carrier.Subprotocol)
        {
            Assert.Contains("Sec-WebSocket-Protocol: chat.v1", lines, StringComparer.OrdinalIgnoreCase);
        }
        if (carrier is Carrier.Query or Carrier.Subprotocol)
        {
            Assert.DoesNotContain(token, head);
        }
        await AssertNeverLoggedAsync(token, path);
    }

    [Theory]
    [InlineData(Carrier.Query)]
    [InlineData(Carrier.Cookie)]
    [InlineData(Carrier.Subprotocol)]
    public async Task The_browser_carriers_work_over_HTTP2_extended_CONNECT(Carrier carrier)
    {
        var path = Path("id");
        var token = _fixture.Tokens.Create("hana");
        var target = carrier == Carrier.Query ? $"{path}?access_token={token}" : path;
        var cookies = new System.Net.CookieContainer();
        if (carrier == Carrier.Cookie)
        {
            cookies.Add(_fixture.Lean.Https, new System.Net.Cookie("token", token));
        }
        string[] subprotocols = carrier == Carrier.Subprotocol
            ? ["chat.v1", "base64url.bearer.authorization.k8s.io." + Base64Url.EncodeToString(Encoding.UTF8.GetBytes(token))]
            : [];
        using (var socket = await WebSocketClient.ConnectAsync(_fixture.Lean, Transport.WssHttp2, target, _fixture.Certificates, cookies, subprotocols))
        {
            await WebSocketClient.SendTextAsync(socket, "over h2");
            Assert.Equal("over h2", await WebSocketClient.ReceiveTextAsync(socket));
            await WebSocketClient.CloseAsync(socket);
        }
        var head = _fixture.HeadFor(path);
        Assert.Contains("X-User-Id: hana", head.Split("\r\n"), StringComparer.OrdinalIgnoreCase);
        Assert.DoesNotContain(token, head.Split("\r\n")[0]);
        Assert.DoesNotContain("bearer.authorization.k8s.io", head);
        await AssertNeverLoggedAsync(token, path);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_redacted_query_token_reaches_the_backend_as_REDACTED(bool lean)
    {
        var path = Path("redact");
        var token = _fixture.Tokens.Create("bob");
        await using (await RawWebSocketClient.ConnectAsync(_fixture.Gateway(lean).Ws, $"{path}?access_token={token}&room=7"))
        {
        }
        var requestLine = _fixture.HeadFor(path).Split("\r\n")[0];
        Assert.Equal($"GET {path}?access_token=REDACTED&room=7 HTTP/1.1", requestLine);
        await AssertNeverLoggedAsync(token, path);
    }

    public static TheoryData<string, string> BadTokens() => new()
    {
        { "signature", "stranger" },
        { "wrong audience", "audience" },
        { "wrong issuer", "issuer" },
        { "token expired", "expired" },
        { "malformed token", "garbage" },
    };

    [Theory]
    [MemberData(nameof(BadTokens))]
    public async Task A_bad_token_is_refused_with_401_before_any_backend_is_contacted(string why, string kind)
    {
        var tokens = _fixture.Tokens;
        var token = kind switch
        {
            "stranger" => tokens.Create(signer: TestTokens.Signer.Stranger),
            "audience" => tokens.Create(audience: "billing"),
            "issuer" => tokens.Create(issuer: "https://evil.test"),
            "expired" => tokens.Create(lifetime: TimeSpan.FromMinutes(-5)),
            _ => "not.a.jwt",
        };
        foreach (var route in new[] { "id", "opt" })
        {
            var path = Path(route);
            var response = await RawConnection.SendAsync(_fixture.Lean.Ws, RawRequest.Handshake(path, edits: [$"Authorization: Bearer {token}"]));

            Assert.Equal(401, response.Status);
            Assert.Equal("Bearer error=\"invalid_token\"", response.Header("WWW-Authenticate"));
            Assert.Contains("bearer token", response.Body);
            Assert.DoesNotContain(_fixture.Backend.Heads, head => head.Contains(path, StringComparison.Ordinal));
        }
        // The reason is in the log (throttled to a line per second per reason: wait for ours), never the token or a stack trace.
        for (var attempt = 0; !Logged(why) && attempt < 5; attempt++)
        {
            await Task.Delay(1100);
            await RawConnection.SendAsync(_fixture.Lean.Ws, RawRequest.Handshake(Path("id"), edits: [$"Authorization: Bearer {token}"]));
        }
        Assert.True(Logged(why), $"no refusal line saying '{why}'");
        Assert.DoesNotContain(_fixture.Logs.Records, r => r.Message.Contains(token, StringComparison.Ordinal));
        Assert.DoesNotContain(_fixture.Logs.Records, r => r.Category.StartsWith("Gateway.", StringComparison.Ordinal) && r.Exception is not null);
        Assert.Contains(_fixture.Logs.Records, r => r.Category == IdentityFixture.AccessLogCategory && r.Message.EndsWith("refused 401 unauthenticated", StringComparison.Ordinal));
    }

    [Fact]
    public async Task No_token_is_401_where_one_is_required_and_passes_without_claim_headers_where_not()
    {
        var required = await RawConnection.SendAsync(_fixture.Lean.Ws, RawRequest.Handshake(Path("id")));
        Assert.Equal(401, required.Status);
        Assert.Equal("Bearer", required.Header("WWW-Authenticate"));

        var path = Path("opt");
        await using (await RawWebSocketClient.ConnectAsync(_fixture.Lean.Ws, path, "X-User-Id: mallory", "x-user-role: admin"))
        {
        }
        var head = _fixture.HeadFor(path);
        Assert.DoesNotContain("X-User-", head, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("mallory", head);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Claim_headers_a_client_sends_never_reach_the_backend(bool lean)
    {
        var path = Path("id");
        var token = _fixture.Tokens.Create("alice");
        await using (await RawWebSocketClient.ConnectAsync(_fixture.Gateway(lean).Ws, path,
            $"Authorization: Bearer {token}", "X-User-Id: mallory", "X-USER-ID: root", "X-User-Role: admin"))
        {
        }
        var lines = _fixture.HeadFor(path).Split("\r\n");
        Assert.Equal(["alice"], lines.Where(l => l.StartsWith("X-User-Id:", StringComparison.OrdinalIgnoreCase)).Select(l => l[10..].Trim()));
        Assert.DoesNotContain(lines, l => l.StartsWith("X-User-Role", StringComparison.OrdinalIgnoreCase));

        // A token whose claims fill both headers: the role is the token's, not the client's.
        var admin = _fixture.Tokens.Create("carol", claims: new Dictionary<string, object> { ["role"] = "moderator" });
        var second = Path("id");
        await using (await RawWebSocketClient.ConnectAsync(_fixture.Gateway(lean).Ws, second, $"Authorization: Bearer {admin}", "X-User-Role: admin"))
        {
        }
        var secondLines = _fixture.HeadFor(second).Split("\r\n");
        Assert.Contains("X-User-Role: moderator", secondLines, StringComparer.OrdinalIgnoreCase);
        Assert.DoesNotContain(secondLines, l => l.Contains("admin", StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_admin_api_lists_who_is_connected()
    {
        var path = Path("id");
        await using var client = await RawWebSocketClient.ConnectAsync(_fixture.Lean.Ws, path, $"Authorization: Bearer {_fixture.Tokens.Create("ivan")}");
        using var http = new HttpClient();
        var json = await http.GetStringAsync(new Uri(_fixture.Lean.Admin, "connections?route=id"));
        var tunnel = Assert.Single(System.Text.Json.JsonDocument.Parse(json).RootElement.GetProperty("connections").EnumerateArray(),
            t => t.GetProperty("user").GetString() == "ivan");
        Assert.Equal("id", tunnel.GetProperty("route").GetString());
    }

    [Fact]
    public async Task Plain_HTTP_on_an_identity_route_loses_the_claim_headers_too()
    {
        var path = Path("opt");
        await RawConnection.SendAsync(_fixture.Lean.Ws, $"GET {path} HTTP/1.1\r\nHost: gateway.test\r\nX-User-Id: mallory\r\n\r\n");
        // The raw backend answers no plain request (YARP retries it and gives up): what matters is what it received.
        var heads = await Retry.Eventually(() => Task.FromResult(Assert.Single(_fixture.Backend.Heads.Where(h => h.Contains(path, StringComparison.Ordinal)).Take(1))),
            TimeSpan.FromSeconds(5));
        Assert.DoesNotContain("mallory", heads);
    }

    [Fact]
    public async Task A_valid_token_without_a_required_claim_is_403()
    {
        var token = _fixture.Tokens.Create("dave", claims: new Dictionary<string, object> { ["scope"] = "billing" });
        var refused = await RawConnection.SendAsync(_fixture.Lean.Ws, RawRequest.Handshake(Path("scoped"), edits: [$"Authorization: Bearer {token}"]));
        Assert.Equal(403, refused.Status);
        Assert.Equal("Bearer error=\"insufficient_scope\"", refused.Header("WWW-Authenticate"));

        var granted = _fixture.Tokens.Create("dave", claims: new Dictionary<string, object> { ["scope"] = "chat" });
        await using var client = await RawWebSocketClient.ConnectAsync(_fixture.Lean.Ws, Path("scoped"), $"Authorization: Bearer {granted}");
    }

    [Fact]
    public async Task MaxConnectionsPerUser_counts_a_users_tunnels_not_the_address()
    {
        var erin = _fixture.Tokens.Create("erin");
        await using (var first = await RawWebSocketClient.ConnectAsync(_fixture.Lean.Ws, Path("peruser"), $"Authorization: Bearer {erin}",
            "X-Forwarded-For: 203.0.113.1"))
        {
            // The same user from another address: her second tunnel, refused.
            var second = await RawConnection.SendAsync(_fixture.Lean.Ws, RawRequest.Handshake(Path("peruser"),
                edits: [$"Authorization: Bearer {erin}", "X-Forwarded-For: 198.51.100.2"]));
            Assert.Equal(503, second.Status);
            Assert.Equal("5", second.Header("Retry-After"));
            Assert.Contains("account", second.Body);
            // Another user from the same address is not affected.
            await using var frank = await RawWebSocketClient.ConnectAsync(_fixture.Lean.Ws, Path("peruser"), $"Authorization: Bearer {_fixture.Tokens.Create("frank")}",
                "X-Forwarded-For: 203.0.113.1");
            await first.SendAsync(RawFrames.CloseFrame(1000));
            await first.Ended.WaitAsync(TimeSpan.FromSeconds(5));
        }
        // Her tunnel closed: room again.
        await Retry.Eventually(async () =>
        {
            await using var again = await RawWebSocketClient.ConnectAsync(_fixture.Lean.Ws, Path("peruser"), $"Authorization: Bearer {erin}");
        }, TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task The_per_user_rate_limit_follows_the_tokens_subject_across_two_connections_from_two_addresses()
    {
        var hana = _fixture.Tokens.Create("hana");
        await using var home = await RawWebSocketClient.ConnectAsync(_fixture.Lean.Ws, Path("userrate"), $"Authorization: Bearer {hana}",
            "X-Forwarded-For: 203.0.113.7");
        await using var phone = await RawWebSocketClient.ConnectAsync(_fixture.Kestrel.Ws, Path("userrate"), $"Authorization: Bearer {hana}",
            "X-Forwarded-For: 198.51.100.7");
        await using var ivan = await RawWebSocketClient.ConnectAsync(_fixture.Lean.Ws, Path("userrate"), $"Authorization: Bearer {_fixture.Tokens.Create("ivan")}",
            "X-Forwarded-For: 203.0.113.7");

        // Hana's three messages from home; then a fourth from her laptop, another address: the same subject, so over the
        // limit (per user and per gateway process: the Kestrel-path gateway beside it keeps its own count).
        foreach (var text in new[] { "one", "two", "three" })
        {
            await home.SendAsync(RawFrames.Encode(RawFrame.Text, System.Text.Encoding.UTF8.GetBytes(text)));
            Assert.Equal(text, System.Text.Encoding.UTF8.GetString((await home.ReceiveAsync(TimeSpan.FromSeconds(5)))!.Payload));
        }
        await using var laptop = await RawWebSocketClient.ConnectAsync(_fixture.Lean.Ws, Path("userrate"), $"Authorization: Bearer {hana}",
            "X-Forwarded-For: 198.51.100.8");
        await laptop.SendAsync(RawFrames.Encode(RawFrame.Text, "four"u8));
        var close = await laptop.ReceiveAsync(TimeSpan.FromSeconds(5));
        Assert.True(close is { Opcode: RawFrame.Close }, $"the laptop got {close?.ToString() ?? "nothing"}");
        Assert.Equal(1008, close!.CloseCode);

        // Another user on the same address, and the same user on the other gateway, are not affected.
        await ivan.SendAsync(RawFrames.Encode(RawFrame.Text, "mine"u8));
        Assert.Equal("mine", System.Text.Encoding.UTF8.GetString((await ivan.ReceiveAsync(TimeSpan.FromSeconds(5)))!.Payload));
        await phone.SendAsync(RawFrames.Encode(RawFrame.Text, "other gateway"u8));
        Assert.Equal("other gateway", System.Text.Encoding.UTF8.GetString((await phone.ReceiveAsync(TimeSpan.FromSeconds(5)))!.Payload));
    }

    [Fact]
    public async Task Keys_come_from_the_JWKS_url_and_an_unknown_key_id_fetches_again_at_most_once_per_gap()
    {
        var token = _fixture.Tokens.Create("gina");
        var path = Path("jwks");
        await using (await RawWebSocketClient.ConnectAsync(_fixture.Lean.Ws, path, $"Authorization: Bearer {token}"))
        {
        }
        Assert.Contains("X-User-Id: gina", _fixture.HeadFor(path).Split("\r\n"), StringComparer.OrdinalIgnoreCase);

        // Tokens naming a key the set does not hold (kid "rsa-2"): refused, and they cannot make the gateway hammer the issuer.
        var before = _fixture.JwksFetches;
        _fixture.Tokens.StrangerKey.KeyId = "rsa-2";
        try
        {
            for (var i = 0; i < 5; i++)
            {
                var response = await RawConnection.SendAsync(_fixture.Lean.Ws,
                    RawRequest.Handshake(Path("jwks"), edits: [$"Authorization: Bearer {_fixture.Tokens.Create(signer: TestTokens.Signer.Stranger)}"]));
                Assert.Equal(401, response.Status);
            }
        }
        finally
        {
            _fixture.Tokens.StrangerKey.KeyId = "rsa-1";
        }
        Assert.InRange(_fixture.JwksFetches - before, 0, 2); // one per gateway at most
    }

    /// <summary>Nothing any part of the gateway logged holds the token: the access line shows the path alone.</summary>
    private async Task AssertNeverLoggedAsync(string token, string path)
    {
        await Retry.Eventually(() => Assert.Contains(_fixture.Logs.Records,
            r => r.Category == IdentityFixture.AccessLogCategory && r.Message.Contains($" {path} ", StringComparison.Ordinal)), TimeSpan.FromSeconds(5));
        Assert.DoesNotContain(_fixture.Logs.Records, r => r.Message.Contains(token, StringComparison.Ordinal));
        Assert.DoesNotContain(_fixture.Logs.Records, r => r.Category == IdentityFixture.AccessLogCategory && r.Message.Contains("access_token", StringComparison.Ordinal));
    }

    private bool Logged(string why) => _fixture.Logs.Records.Any(r => r.Category == "Gateway.Handshake"
        && r.Message.StartsWith("Refused a WebSocket handshake with 401", StringComparison.Ordinal) && r.Message.Contains(why, StringComparison.Ordinal));
}
