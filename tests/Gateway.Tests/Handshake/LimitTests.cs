using System.Globalization;
using System.Net.WebSockets;
using System.Text.Json.Nodes;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Handshake;

/// <summary>Connection limits (in total and per client address) hold and release when tunnels close; the handshake rate limit answers 429.</summary>
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
    public async Task Without_trusted_forwarders_X_Forwarded_For_does_not_change_who_the_client_is()
    {
        await using var gateway = await StartAsync(new JsonObject { ["MaxConnectionsPerClient"] = 1 });
        using var held = await ConnectAsync(gateway, "203.0.113.1");

        var refused = await HandshakeAsync(gateway, "203.0.113.2");
        Assert.Equal(503, refused.Status);
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
