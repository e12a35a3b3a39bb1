using System.Net.WebSockets;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using Gateway.LoadBalancing;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Yarp.ReverseProxy;

namespace Gateway.Tests.Relay;

/// <summary>
/// The tunnel forwarder's HTTP/2 backend leg, against a real Kestrel backend: a cluster that asks for HTTP/2 gets an
/// extended CONNECT (RFC 8441), over cleartext with prior knowledge when the version is exact, over TLS with ALPN h2;
/// a backend that turns WebSockets over HTTP/2 down (no SETTINGS_ENABLE_CONNECT_PROTOCOL, or no h2 at all) gets one
/// HTTP/1.1 upgrade instead when the cluster's policy allows a lower version, and a 502 when it does not. Over the
/// HTTP/2 stream the gateway's own frames (pings, the Close for a vanished client) reach the backend as relayed ones do.
/// </summary>
public sealed class Http2BackendTests : IAsyncLifetime
{
    private readonly TestCertificates _certificates = new();
    private X509Certificate2 _backendCertificate = null!;
    private Http2Backend? _backend;

    public Task InitializeAsync()
    {
        var (certificatePath, keyPath, _) = _certificates.IssueServer("backend", "localhost");
        _backendCertificate = X509Certificate2.CreateFromPemFile(certificatePath, keyPath);
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        if (_backend is not null)
        {
            await _backend.DisposeAsync();
        }
        _backendCertificate.Dispose();
        _certificates.Dispose();
    }

    private async Task<GatewayServer> StartAsync(Http2BackendMode mode, string versionPolicy, bool leanUpgrades = true, JsonObject? policy = null)
    {
        _backend = await Http2Backend.StartAsync(mode, mode == Http2BackendMode.H2c ? null : _backendCertificate);
        var (certificate, key, _) = _certificates.IssueServer("server", "localhost");
        var cluster = new JsonObject
        {
            ["Destinations"] = new JsonObject { ["d1"] = new JsonObject { ["Address"] = _backend.Address.ToString() } },
            ["HttpRequest"] = new JsonObject { ["Version"] = "2", ["VersionPolicy"] = versionPolicy },
            // The backend's certificate comes from the test's own CA, which YARP's client cannot be told of.
            ["HttpClient"] = new JsonObject { ["DangerousAcceptAnyServerCertificate"] = true },
        };
        var proxy = new JsonObject
        {
            ["Routes"] = new JsonObject
            {
                ["raw"] = new JsonObject
                {
                    ["ClusterId"] = "raw",
                    ["Match"] = new JsonObject { ["Path"] = "/raw/{**rest}" },
                    ["Metadata"] = new JsonObject { ["WebSocketPolicy"] = "test" },
                },
            },
            ["Clusters"] = new JsonObject { ["raw"] = cluster },
        };
        var config = GatewayServer.Config(proxy, [new JsonObject { ["Path"] = certificate, ["KeyPath"] = key }]);
        config["Gateway"]!["LeanUpgrades"] = leanUpgrades;
        config["Gateway"]!["WebSocketPolicies"] = new JsonObject { ["test"] = policy ?? new JsonObject() };
        return await GatewayServer.StartAsync(config);
    }

    [Theory]
    [InlineData(Http2BackendMode.H2c, "RequestVersionExact", Transport.Ws, true)]
    [InlineData(Http2BackendMode.H2c, "RequestVersionExact", Transport.WssHttp11, false)]
    [InlineData(Http2BackendMode.H2c, "RequestVersionExact", Transport.WssHttp2, true)]
    [InlineData(Http2BackendMode.H2Tls, "RequestVersionOrLower", Transport.Ws, true)]
    [InlineData(Http2BackendMode.H2Tls, "RequestVersionExact", Transport.WssHttp2, true)]
    public async Task A_cluster_that_asks_for_http2_reaches_its_backend_with_an_extended_connect(Http2BackendMode mode, string versionPolicy,
        Transport transport, bool leanUpgrades)
    {
        await using var gateway = await StartAsync(mode, versionPolicy, leanUpgrades);
        var client = await WebSocketClient.ConnectAsync(gateway, transport, "/raw/h2", _certificates);
        try
        {
            // RFC 8441 section 4: a CONNECT whose :protocol is "websocket", on an HTTP/2 stream of the backend's.
            var request = Assert.Single(_backend!.Requests);
            Assert.Equal(new Http2BackendRequest("HTTP/2", "CONNECT", ExtendedConnect: true, ConnectProtocol: "websocket"), request);
            if (mode == Http2BackendMode.H2Tls)
            {
                Assert.Equal(new[] { "h2" }, _backend.Alpn);
            }

            await RelaysBothWaysAndClosesAsync(client, "HTTP/2", TheDestination(gateway));
        }
        finally
        {
            client.Abort();
            client.Dispose();
        }
    }

    [Theory]
    [InlineData(Http2BackendMode.H2TlsWithoutWebSockets, Transport.Ws)]
    [InlineData(Http2BackendMode.H2TlsWithoutWebSockets, Transport.WssHttp2)]
    [InlineData(Http2BackendMode.Http11Tls, Transport.Ws)]
    [InlineData(Http2BackendMode.Http11Tls, Transport.WssHttp2)]
    public async Task A_backend_without_http2_websockets_gets_one_http11_upgrade_when_the_policy_allows_lower(Http2BackendMode mode, Transport transport)
    {
        await using var gateway = await StartAsync(mode, "RequestVersionOrLower");
        var client = await WebSocketClient.ConnectAsync(gateway, transport, "/raw/fallback", _certificates);
        try
        {
            if (mode == Http2BackendMode.H2TlsWithoutWebSockets)
            {
                // The h2 connection was made and offered no extended CONNECT, so no request went on it (RFC 8441 section 3).
                Assert.Equal(1, _backend!.StrippedPrefaces);
                Assert.Equal("h2", _backend.Alpn.First());
            }
            // The retry's connection: SocketsHttpHandler offers no ALPN for an HTTP/1.1 request, and h2 is not chosen.
            Assert.DoesNotContain("h2", _backend!.Alpn.Skip(1));
            var request = Assert.Single(_backend.Requests);
            Assert.Equal(new Http2BackendRequest("HTTP/1.1", "GET", ExtendedConnect: false, ConnectProtocol: null), request);

            await RelaysBothWaysAndClosesAsync(client, "HTTP/1.1", TheDestination(gateway));
        }
        finally
        {
            client.Abort();
            client.Dispose();
        }
    }

    [Theory]
    [InlineData(Http2BackendMode.H2TlsWithoutWebSockets)]
    [InlineData(Http2BackendMode.Http11Tls)]
    public async Task A_backend_without_http2_websockets_is_a_502_when_the_version_is_exact(Http2BackendMode mode)
    {
        await using var gateway = await StartAsync(mode, "RequestVersionExact");
        var refused = await Assert.ThrowsAsync<WebSocketException>(() => WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/raw/exact", _certificates));
        Assert.Contains("502", refused.Message);
        Assert.Empty(_backend!.Requests);
    }

    [Theory]
    [InlineData(Http2BackendMode.H2c, "RequestVersionExact")]
    [InlineData(Http2BackendMode.H2Tls, "RequestVersionOrLower")]
    public async Task A_backend_stream_reset_gives_its_client_1014_at_once(Http2BackendMode mode, string versionPolicy)
    {
        await using var gateway = await StartAsync(mode, versionPolicy);
        using var client = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/raw/reset", _certificates);
        Assert.Equal("welcome HTTP/2", await WebSocketClient.ReceiveTextAsync(client));

        await WebSocketClient.SendTextAsync(client, "abort");
        // RFC 6455 section 7.4.1's 1014 (bad gateway): the backend's stream ended without a Close.
        var (type, _) = await WebSocketClient.ReceiveAsync(client);
        Assert.Equal(WebSocketMessageType.Close, type);
        Assert.Equal(1014, (int)client.CloseStatus!);
        await Retry.Eventually(() => Assert.Equal(0, DestinationLoad.Tunnels(TheDestination(gateway))), TimeSpan.FromSeconds(5));
    }

    [Theory]
    [InlineData(Http2BackendMode.H2c, "RequestVersionExact")]
    [InlineData(Http2BackendMode.H2Tls, "RequestVersionOrLower")]
    public async Task A_client_that_vanishes_gets_its_http2_backend_a_1001(Http2BackendMode mode, string versionPolicy)
    {
        await using var gateway = await StartAsync(mode, versionPolicy);
        var client = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/raw/vanish", _certificates);
        Assert.Equal("welcome HTTP/2", await WebSocketClient.ReceiveTextAsync(client));

        // The Close must reach the backend before anything resets its stream (RFC 8441 section 5: an RST_STREAM is a TCP reset).
        client.Abort();
        client.Dispose();
        var (status, _) = await _backend!.CloseReceived.Task.WaitAsync(WebSocketClient.Timeout);
        Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, status);
        await Retry.Eventually(() => Assert.Equal(0, DestinationLoad.Tunnels(TheDestination(gateway))), TimeSpan.FromSeconds(5));
    }

    [Theory]
    [InlineData(Http2BackendMode.H2c, "RequestVersionExact")]
    [InlineData(Http2BackendMode.H2Tls, "RequestVersionOrLower")]
    public async Task The_gateways_pings_reach_an_idle_http2_backend_which_is_not_reaped(Http2BackendMode mode, string versionPolicy)
    {
        // The gateway's own frames are no relayed writes: they must reach an HTTP/2 stream, which holds writes until flushed.
        // A 2 s timeout, not less: a ping's write (and flush) pending that long reaps the backend as not reading, and at the
        // suite's busy start on 2 cores one took over 1 s.
        await using var gateway = await StartAsync(mode, versionPolicy, policy: RelayConfig.KeepAlive("00:00:00.200", "00:00:02"));
        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/idle");
        var welcome = await client.ReceiveAsync(TimeSpan.FromSeconds(5));
        Assert.Equal("welcome HTTP/2", System.Text.Encoding.UTF8.GetString(welcome!.Payload));

        // Twice the timeout with nothing relayed: only pings and pongs, answered on both sides.
        Assert.Empty((await client.IdleAsync(TimeSpan.FromSeconds(4))).Select(frame => $"{frame} {frame.CloseCode} {frame.CloseReason}"));
        Assert.True(client.PingsSeen > 0);

        await client.SendAsync(RawFrames.Encode(RawFrame.Text, "still here"u8));
        var echoed = await client.ReceiveAsync(TimeSpan.FromSeconds(5));
        Assert.Equal("still here", System.Text.Encoding.UTF8.GetString(echoed!.Payload));
        Assert.Equal(1, DestinationLoad.Tunnels(TheDestination(gateway)));
    }

    /// <summary>The backend's welcome, a text and a binary message larger than HTTP/2's initial window each way, then a Close.</summary>
    private async Task RelaysBothWaysAndClosesAsync(ClientWebSocket client, string backendProtocol, Yarp.ReverseProxy.Model.DestinationState destination)
    {
        Assert.Equal($"welcome {backendProtocol}", await WebSocketClient.ReceiveTextAsync(client));
        Assert.Equal(1, DestinationLoad.Tunnels(destination));

        await WebSocketClient.SendTextAsync(client, "both ways");
        Assert.Equal("both ways", await WebSocketClient.ReceiveTextAsync(client));
        // RFC 9113 section 6.9.2: 65,535 bytes of initial window; more must wait for the peer's WINDOW_UPDATEs.
        var large = new byte[256 * 1024];
        Random.Shared.NextBytes(large);
        await WebSocketClient.SendAsync(client, large, WebSocketMessageType.Binary);
        var (type, echoed) = await WebSocketClient.ReceiveAsync(client);
        Assert.Equal(WebSocketMessageType.Binary, type);
        Assert.Equal(large, echoed);

        Assert.Equal(WebSocketCloseStatus.NormalClosure, await WebSocketClient.CloseAsync(client));
        Assert.Equal((WebSocketCloseStatus.NormalClosure, "bye"), await _backend!.CloseReceived.Task.WaitAsync(WebSocketClient.Timeout));
        await Retry.Eventually(() => Assert.Equal(0, DestinationLoad.Tunnels(destination)), TimeSpan.FromSeconds(5));
    }

    private static Yarp.ReverseProxy.Model.DestinationState TheDestination(GatewayServer gateway)
    {
        Assert.True(gateway.Services.GetRequiredService<IProxyStateLookup>().TryGetCluster("raw", out var cluster));
        return cluster.Destinations["d1"];
    }
}
