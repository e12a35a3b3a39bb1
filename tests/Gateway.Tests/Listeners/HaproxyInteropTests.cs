using System.Net;
using System.Text.Json.Nodes;
using Gateway.Tests.Handshake;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Listeners;

/// <summary>
/// HAProxy, the PROXY protocol's reference implementation, as the balancer: its v1 header on ws, its v2 header with a
/// CRC32c TLV on wss (TLS passed through). Clients connect from other loopback addresses than HAProxy's own, so the
/// backend's X-Forwarded-For shows whose address the gateway took.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class HaproxyInteropTests
{
    [HaproxyFact]
    public async Task Clients_behind_HAProxy_reach_the_backend_under_their_own_addresses()
    {
        await using var backend = await ProbeBackend.StartAsync();
        var proxy = HandshakeGateway.Proxy(backend, ("echo", "/echo", null));
        await using var gateway = await GatewayServer.StartAsync(HandshakeGateway.Config(proxy, new JsonObject(), gateway: section =>
        {
            section["Listeners"]!["ws"]!["ProxyProtocol"] = true;
            section["Listeners"]!["wss"]!["ProxyProtocol"] = true;
        }));
        await using var haproxy = await Haproxy.StartAsync(
            ("v1", gateway.Ws, "send-proxy"),
            ("v2", gateway.Wss, "send-proxy-v2 proxy-v2-options crc32c"));

        await using (var v1 = await ProxiedClient.ConnectAsync(haproxy.Frontends["v1"], [], from: IPAddress.Parse("127.0.0.2")))
        {
            Assert.Equal(101, await v1.HandshakeAsync("/echo/a"));
            Assert.Equal("v1", await v1.EchoAsync("v1"));
        }
        await using (var v2 = await ProxiedClient.ConnectAsync(haproxy.Frontends["v2"], [], from: IPAddress.Parse("127.0.0.3")))
        {
            Assert.Equal(101, await v2.HandshakeAsync("/echo/b"));
            Assert.Equal("v2", await v2.EchoAsync("v2"));
        }
        Assert.Equal(new[] { "127.0.0.2", "127.0.0.3" }, backend.Seen.Select(r => r.ForwardedFor ?? "(none)").ToArray());
        var scrape = await MetricsScrape.FetchAsync(gateway);
        Assert.Equal(0, scrape.Value("gateway_proxy_protocol_rejected_total"));
    }
}
