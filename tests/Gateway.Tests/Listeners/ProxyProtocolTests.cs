using System.Net.Sockets;
using System.Security.Authentication;
using System.Text.Json.Nodes;
using Gateway.Tests.Handshake;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Listeners;

/// <summary>
/// The real gateway with PROXY protocol on its ws and wss listeners, reached the way an L4 balancer reaches it: raw TCP,
/// a header, then TLS and the handshake on the same socket. The backend records the X-Forwarded-For it received.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class ProxyProtocolTests : IAsyncLifetime
{
    private const string Rejected = "gateway_proxy_protocol_rejected_total";

    private ProbeBackend _backend = null!;

    public async Task InitializeAsync() => _backend = await ProbeBackend.StartAsync();

    public async Task DisposeAsync() => await _backend.DisposeAsync();

    private Task<GatewayServer> StartAsync(string? headerTimeout = null, string? trusted = null)
    {
        var proxy = HandshakeGateway.Proxy(_backend, ("echo", "/echo", null), ("limited", "/limited", "one"));
        var policies = new JsonObject
        {
            ["one"] = new JsonObject { ["Limits"] = new JsonObject { ["MaxConnectionsPerClient"] = 1 } },
        };
        return GatewayServer.StartAsync(HandshakeGateway.Config(proxy, policies, gateway: section =>
        {
            section["Listeners"]!["ws"]!["ProxyProtocol"] = true;
            section["Listeners"]!["wss"]!["ProxyProtocol"] = true;
            if (headerTimeout is not null)
            {
                section["Tls"]!["HandshakeTimeout"] = headerTimeout;
            }
            if (trusted is not null)
            {
                section["Listeners"]!["ws"]!["ProxyProtocolTrustedNetworks"] = new JsonArray(trusted);
                section["Listeners"]!["wss"]!["ProxyProtocolTrustedNetworks"] = new JsonArray(trusted);
            }
        }));
    }

    private static byte[] Header(int version, string client, int port)
    {
        // Both addresses of a header are of one family.
        var destination = client.Contains(':') ? "2001:db8::443" : "192.0.2.100";
        return version == 1 ? ProxyHeaders.V1(client, port, destination) : ProxyHeaders.V2(client, port, destination);
    }

    [Theory]
    [InlineData("ws", 1, "203.0.113.7")]
    [InlineData("ws", 2, "2001:db8:7::1")]
    [InlineData("wss", 1, "2001:db8:7::2")]
    [InlineData("wss", 2, "203.0.113.8")]
    public async Task The_backend_sees_the_address_from_the_header_in_X_Forwarded_For(string listener, int version, string client)
    {
        await using var gateway = await StartAsync();
        await using var connection = await ProxiedClient.ConnectAsync(gateway.Listeners[listener], Header(version, client, 50123));
        Assert.Equal(101, await connection.HandshakeAsync("/echo/room"));
        Assert.Equal("through the balancer", await connection.EchoAsync("through the balancer"));

        var seen = Assert.Single(_backend.Seen);
        Assert.Equal(client, seen.ForwardedFor);
    }

    [Fact]
    public async Task A_LOCAL_header_keeps_the_balancers_own_address()
    {
        await using var gateway = await StartAsync();
        await using var connection = await ProxiedClient.ConnectAsync(gateway.Ws, ProxyHeaders.V2Local());
        Assert.Equal(101, await connection.HandshakeAsync("/echo/health"));
        Assert.Equal("127.0.0.1", Assert.Single(_backend.Seen).ForwardedFor);
    }

    [Fact]
    public async Task A_header_sent_one_byte_per_write_is_read_whole_before_TLS_starts()
    {
        await using var gateway = await StartAsync();
        await using var connection = await ProxiedClient.ConnectAsync(gateway.Wss, ProxyHeaders.V1("198.51.100.77", 1234), chunk: 1);
        Assert.Equal(101, await connection.HandshakeAsync("/echo/slow"));
        Assert.Equal("198.51.100.77", Assert.Single(_backend.Seen).ForwardedFor);
    }

    [Fact]
    public async Task Per_client_limits_count_the_address_from_the_header()
    {
        await using var gateway = await StartAsync();
        // Every connection comes from the same balancer (loopback); the policy allows one tunnel per client.
        await using var first = await ProxiedClient.ConnectAsync(gateway.Ws, ProxyHeaders.V2("203.0.113.1", 1000));
        Assert.Equal(101, await first.HandshakeAsync("/limited/a"));
        Assert.Equal("open", await first.EchoAsync("open"));

        await using (var again = await ProxiedClient.ConnectAsync(gateway.Wss, ProxyHeaders.V1("203.0.113.1", 1001)))
        {
            Assert.Equal(503, await again.HandshakeAsync("/limited/a"));
        }

        await using var other = await ProxiedClient.ConnectAsync(gateway.Ws, ProxyHeaders.V1("203.0.113.2", 1000));
        Assert.Equal(101, await other.HandshakeAsync("/limited/b"));
        Assert.Equal("also open", await other.EchoAsync("also open"));
        Assert.Equal(new[] { "203.0.113.1", "203.0.113.2" }, _backend.Seen.Select(r => r.ForwardedFor ?? "(none)").ToArray());
    }

    [Fact]
    public async Task Connections_without_a_valid_header_are_closed_unanswered_and_counted_by_reason()
    {
        await using var gateway = await StartAsync();

        // A client that bypassed the balancer: its handshake gets no answer at all.
        await using (var direct = await ProxiedClient.ConnectAsync(gateway.Ws, []))
        {
            await direct.WriteAsync(System.Text.Encoding.ASCII.GetBytes(RawRequest.Handshake("/echo/room")));
            Assert.Equal(0, await direct.ReadUntilClosedAsync());
        }
        // The same over TLS: the ClientHello is not a header.
        var tls = await Assert.ThrowsAnyAsync<Exception>(() => ProxiedClient.ConnectAsync(gateway.Wss, []));
        Assert.True(tls is IOException or AuthenticationException, tls.ToString());

        await using (var garbage = await ProxiedClient.ConnectAsync(gateway.Ws, [0x00, 0x01, 0x02, 0x03]))
        {
            Assert.Equal(0, await garbage.ReadUntilClosedAsync());
        }
        await using (var malformed = await ProxiedClient.ConnectAsync(gateway.Ws, "PROXY TCP4 203.0.113.1 192.0.2.1 0080 443\r\n"u8.ToArray()))
        {
            Assert.Equal(0, await malformed.ReadUntilClosedAsync());
        }
        using (var truncated = new TcpClient())
        {
            await truncated.ConnectAsync(gateway.Ws.Host, gateway.Ws.Port);
            var stream = truncated.GetStream();
            await stream.WriteAsync(ProxyHeaders.V2("203.0.113.1", 1000)[..20]);
            truncated.Client.Shutdown(SocketShutdown.Send);
            Assert.Equal(0, await stream.ReadAsync(new byte[16]).AsTask().WaitAsync(TimeSpan.FromSeconds(10)));
        }

        Assert.Equal(0, _backend.Requests);
        await Retry.Eventually(async () =>
        {
            var scrape = await MetricsScrape.FetchAsync(gateway);
            Assert.Equal(1, scrape.Value(Rejected, ("listener", "ws"), ("reason", "missing")));
            Assert.Equal(1, scrape.Value(Rejected, ("listener", "wss"), ("reason", "missing")));
            Assert.Equal(1, scrape.Value(Rejected, ("listener", "ws"), ("reason", "garbage")));
            Assert.Equal(1, scrape.Value(Rejected, ("listener", "ws"), ("reason", "malformed")));
            Assert.Equal(1, scrape.Value(Rejected, ("listener", "ws"), ("reason", "truncated")));
            Assert.Equal(5, scrape.Value(Rejected));
        }, TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task A_header_that_never_comes_is_given_up_on_after_the_handshake_timeout()
    {
        await using var gateway = await StartAsync(headerTimeout: "00:00:01");
        await using var silent = await ProxiedClient.ConnectAsync(gateway.Ws, []);
        Assert.Equal(0, await silent.ReadUntilClosedAsync());
        await Retry.Eventually(async () =>
            Assert.Equal(1, (await MetricsScrape.FetchAsync(gateway)).Value(Rejected, ("listener", "ws"), ("reason", "timeout"))),
            TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task A_peer_outside_the_trusted_networks_cannot_name_a_client_and_is_closed_and_counted()
    {
        // The balancer is 127.0.0.1; a client that reaches the listener directly connects from 127.0.0.2.
        await using var gateway = await StartAsync(trusted: "127.0.0.1/32");
        var direct = System.Net.IPAddress.Parse("127.0.0.2");
        foreach (var (listener, header) in new[] { ("ws", ProxyHeaders.V1("6.6.6.6", 4242)), ("ws", ProxyHeaders.V2("6.6.6.6", 4242)) })
        {
            await using var spoofer = await ProxiedClient.ConnectAsync(gateway.Listeners[listener], header, from: direct);
            await spoofer.WriteAsync(System.Text.Encoding.ASCII.GetBytes(RawRequest.Handshake("/echo/spoofed")));
            Assert.Equal(0, await spoofer.ReadUntilClosedAsync());
        }
        var tls = await Assert.ThrowsAnyAsync<Exception>(() => ProxiedClient.ConnectAsync(gateway.Wss, ProxyHeaders.V1("6.6.6.6", 4242), from: direct));
        Assert.True(tls is IOException or AuthenticationException, tls.ToString());
        Assert.Equal(0, _backend.Requests);

        // The trusted balancer's header is believed, as before.
        await using (var balanced = await ProxiedClient.ConnectAsync(gateway.Ws, ProxyHeaders.V1("203.0.113.9", 4242)))
        {
            Assert.Equal(101, await balanced.HandshakeAsync("/echo/balanced"));
        }
        Assert.Equal("203.0.113.9", Assert.Single(_backend.Seen).ForwardedFor);
        await Retry.Eventually(async () =>
        {
            var scrape = await MetricsScrape.FetchAsync(gateway);
            Assert.Equal(2, scrape.Value(Rejected, ("listener", "ws"), ("reason", "untrusted_peer")));
            Assert.Equal(1, scrape.Value(Rejected, ("listener", "wss"), ("reason", "untrusted_peer")));
        }, TimeSpan.FromSeconds(5));
    }
}
