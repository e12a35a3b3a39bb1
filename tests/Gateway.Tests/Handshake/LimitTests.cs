using System.Globalization;
using System.Net.WebSockets;
using System.Text.Json.Nodes;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Handshake;

/// <summary>
/// Connection limits (in total and per client: an IPv4 address or an IPv6 /64) hold and release when tunnels close,
/// and answer 503 with Retry-After; the handshake rate limit answers 429.
/// </summary>
public sealed class LimitTests : IAsyncLifetime
{
    private ProbeBackend _backend = null!;

    public async Task InitializeAsync() => _backend = await ProbeBackend.StartAsync();

    public async Task DisposeAsync() => await _backend.DisposeAsync();

    [Fact]
    public async Task The_total_limit_refuses_with_503_and_frees_a_place_when_a_tunnel_closes()
    {
        await using var gateway = await StartAsync(new JsonObject { ["MaxConnections"] = 2 });
        using var first = await ConnectAsync(gateway);
        using var second = await ConnectAsync(gateway);
        await EchoAsync(second);

        var before = _backend.Requests;
        var refused = await HandshakeAsync(gateway);
        Assert.Equal(503, refused.Status);
        Assert.Equal("5", refused.Header("Retry-After"));
        Assert.Contains("connection limit", refused.Body);
        Assert.Equal(before, _backend.Requests);

        // Only tunnels count: ordinary HTTP on the same route still passes.
        Assert.Equal(200, (await RawConnection.SendAsync(gateway.Ws, RawRequest.Plain("/limited/page"))).Status);

        await WebSocketClient.CloseAsync(first);
        ClientWebSocket? third = null;
        await HandshakeGateway.Eventually(async () => third = await ConnectAsync(gateway), TimeSpan.FromSeconds(5));
        await EchoAsync(third!);
        Assert.Equal(503, (await HandshakeAsync(gateway)).Status);

        await WebSocketClient.CloseAsync(second);
        await WebSocketClient.CloseAsync(third!);
        third!.Dispose();
    }

    [Fact]
    public async Task The_per_client_limit_counts_each_client_named_by_a_trusted_forwarder()
    {
        await using var gateway = await StartAsync(new JsonObject { ["MaxConnectionsPerClient"] = 2 }, trustLoopback: true);
        using var a1 = await ConnectAsync(gateway, "203.0.113.1");
        using var a2 = await ConnectAsync(gateway, "203.0.113.1");

        var before = _backend.Requests;
        var refused = await HandshakeAsync(gateway, "203.0.113.1");
        Assert.Equal(503, refused.Status);
        Assert.Equal("5", refused.Header("Retry-After"));
        Assert.Contains("your address", refused.Body);
        Assert.Equal(before, _backend.Requests);

        // Another client behind the same forwarder has its own allowance; the backend sees who it is.
        using var b1 = await ConnectAsync(gateway, "203.0.113.2");
        await EchoAsync(b1);
        Assert.Contains(_backend.Seen, r => r.ForwardedFor == "203.0.113.2");

        await WebSocketClient.CloseAsync(a1);
        ClientWebSocket? a3 = null;
        await HandshakeGateway.Eventually(async () => a3 = await ConnectAsync(gateway, "203.0.113.1"), TimeSpan.FromSeconds(5));
        await EchoAsync(a3!);

        foreach (var socket in new[] { a2, b1, a3! })
        {
            await WebSocketClient.CloseAsync(socket);
        }
        a3!.Dispose();
    }

    [Fact]
    public async Task The_per_client_limit_counts_IPv6_clients_by_their_64_network()
    {
        await using var gateway = await StartAsync(new JsonObject { ["MaxConnectionsPerClient"] = 2 }, trustLoopback: true);
        // Two addresses of one subscriber's /64 (say, privacy addresses) fill its allowance...
        using var a1 = await ConnectAsync(gateway, "2001:db8:1:1::1");
        using var a2 = await ConnectAsync(gateway, "2001:db8:1:1:8000::2");

        var before = _backend.Requests;
        var refused = await HandshakeAsync(gateway, "2001:db8:1:1:ffff:ffff:ffff:ffff");
        Assert.Equal(503, refused.Status);
        Assert.Equal("5", refused.Header("Retry-After"));
        Assert.Contains("your address", refused.Body);
        Assert.Equal(before, _backend.Requests);

        // ...while the next /64 is another client.
        using var b1 = await ConnectAsync(gateway, "2001:db8:1:2::1");
        await EchoAsync(b1);

        await WebSocketClient.CloseAsync(a1);
        ClientWebSocket? a3 = null;
        await HandshakeGateway.Eventually(async () => a3 = await ConnectAsync(gateway, "2001:db8:1:1::3"), TimeSpan.FromSeconds(5));
        await EchoAsync(a3!);

        foreach (var socket in new[] { a2, b1, a3! })
        {
            await WebSocketClient.CloseAsync(socket);
        }
        a3!.Dispose();
    }

    [Fact]
    public async Task A_policy_can_count_IPv6_clients_by_another_prefix_length()
    {
        await using var gateway = await StartAsync(new JsonObject { ["MaxConnectionsPerClient"] = 1, ["IPv6PrefixLength"] = 128 }, trustLoopback: true);
        using var a1 = await ConnectAsync(gateway, "2001:db8:1:1::1");

        // Per address: another address of the same /64 has its own allowance, the same address has none left.
        Assert.Equal(101, (await HandshakeAsync(gateway, "2001:db8:1:1::2")).Status);
        Assert.Equal(503, (await HandshakeAsync(gateway, "2001:db8:1:1::1")).Status);
        await WebSocketClient.CloseAsync(a1);
    }

    [Fact]
    public async Task The_handshake_rate_counts_IPv6_clients_by_their_64_network()
    {
        await using var gateway = await StartAsync(new JsonObject { ["HandshakesPerMinutePerClient"] = 2 }, trustLoopback: true);
        Assert.Equal(101, (await HandshakeAsync(gateway, "2001:db8:7:7::1")).Status);
        Assert.Equal(101, (await HandshakeAsync(gateway, "2001:db8:7:7::2")).Status);

        var limited = await HandshakeAsync(gateway, "2001:db8:7:7::3");
        Assert.Equal(429, limited.Status);
        Assert.NotNull(limited.Header("Retry-After"));

        Assert.Equal(101, (await HandshakeAsync(gateway, "2001:db8:7:8::1")).Status);
    }

    [Fact]
    public async Task Without_trusted_forwarders_X_Forwarded_For_does_not_change_who_the_client_is()
    {
        await using var gateway = await StartAsync(new JsonObject { ["MaxConnectionsPerClient"] = 1 });
        using var held = await ConnectAsync(gateway, "203.0.113.1");

        var refused = await HandshakeAsync(gateway, "203.0.113.2");
        Assert.Equal(503, refused.Status);
        Assert.Equal("5", refused.Header("Retry-After"));
        await WebSocketClient.CloseAsync(held);
    }

    [Fact]
    public async Task The_handshake_rate_limit_answers_429_with_Retry_After_per_client()
    {
        await using var gateway = await StartAsync(new JsonObject { ["HandshakesPerMinutePerClient"] = 3 }, trustLoopback: true);
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(101, (await HandshakeAsync(gateway, "198.51.100.7")).Status);
        }

        var before = _backend.Requests;
        var limited = await HandshakeAsync(gateway, "198.51.100.7");
        Assert.Equal(429, limited.Status);
        var retryAfter = int.Parse(limited.Header("Retry-After")!, CultureInfo.InvariantCulture);
        Assert.InRange(retryAfter, 1, 20); // one handshake every 20 s refills the bucket
        Assert.Contains("too many handshakes", limited.Body);
        Assert.Equal(before, _backend.Requests);

        Assert.Equal(101, (await HandshakeAsync(gateway, "198.51.100.8")).Status);
        Assert.Equal(200, (await RawConnection.SendAsync(gateway.Ws, RawRequest.Plain("/limited/page"))).Status);
    }

    private async Task<GatewayServer> StartAsync(JsonObject limits, bool trustLoopback = false)
    {
        var proxy = HandshakeGateway.Proxy(_backend, ("limited", "/limited", "limited"));
        var policies = new JsonObject { ["limited"] = new JsonObject { ["Limits"] = limits } };
        return await GatewayServer.StartAsync(HandshakeGateway.Config(proxy, policies, gateway: section =>
        {
            if (trustLoopback)
            {
                section["TrustedForwarders"] = HandshakeGateway.Strings("127.0.0.0/8");
            }
        }));
    }

    private static async Task<ClientWebSocket> ConnectAsync(GatewayServer gateway, string? forwardedFor = null)
    {
        var socket = new ClientWebSocket();
        socket.Options.KeepAliveInterval = TimeSpan.Zero;
        if (forwardedFor is not null)
        {
            socket.Options.SetRequestHeader("X-Forwarded-For", forwardedFor);
        }
        using var timeout = new CancellationTokenSource(WebSocketClient.Timeout);
        try
        {
            await socket.ConnectAsync(new Uri(gateway.Ws, "limited/echo"), timeout.Token);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        return socket;
    }

    private static Task<RawResponse> HandshakeAsync(GatewayServer gateway, string? forwardedFor = null) =>
        RawConnection.SendAsync(gateway.Ws, RawRequest.Handshake("/limited/x", edits: forwardedFor is null ? [] : [$"X-Forwarded-For: {forwardedFor}"]));

    private static async Task EchoAsync(WebSocket socket)
    {
        await WebSocketClient.SendTextAsync(socket, "ping");
        Assert.Equal("ping", await WebSocketClient.ReceiveTextAsync(socket));
    }
}
