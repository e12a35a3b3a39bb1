using System.Net;
using System.Net.Sockets;
using System.Text.Json.Nodes;
using Gateway.Configuration;
using Gateway.Proxy;
using Gateway.Tests.Handshake;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Model;

namespace Gateway.Tests.Proxy;

/// <summary>
/// <c>Gateway:Upstream:SourceAddresses</c>: backend connections leave from the listed addresses in turn (127.0.0.2 and
/// 127.0.0.3 are this machine's, as all of 127/8 is); running out of local ports is the gateway's 502, not the
/// backend's fault. Serial because it reads exact metric values.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class SourceAddressTests
{
    // TEST-NET-1 (RFC 5737): never an address of this machine, so binding to it fails as a vanished address does.
    private static readonly IPAddress NotLocal = IPAddress.Parse("192.0.2.1");

    [Fact]
    public async Task Backend_connections_alternate_between_the_source_addresses()
    {
        await using var backend = new RawBackend();
        var config = GatewayServer.Config(Proxy(backend));
        config["Gateway"]!["Upstream"] = new JsonObject { ["SourceAddresses"] = new JsonArray("127.0.0.2", "127.0.0.3") };
        await using var gateway = await GatewayServer.StartAsync(config);

        const int Handshakes = 40;
        for (var i = 0; i < Handshakes; i++)
        {
            await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/room");
        }

        var bySource = backend.Peers.GroupBy(p => p.Address.ToString()).ToDictionary(g => g.Key, g => g.Count());
        Assert.Equal(["127.0.0.2", "127.0.0.3"], bySource.Keys.Order());
        Assert.Equal(Handshakes, bySource.Values.Sum());
        Assert.True(Math.Abs(bySource["127.0.0.2"] - bySource["127.0.0.3"]) <= 1, string.Join(", ", bySource));
    }

    [Fact]
    public async Task Without_a_local_port_the_handshake_gets_502_counted_once_warned_and_no_destination_is_blamed()
    {
        await using var first = new RawBackend();
        await using var second = new RawBackend();
        var logs = new CapturingLoggerProvider();
        var config = GatewayServer.Config(Proxy(first, second));
        await using var gateway = await GatewayServer.StartAsync(config, services =>
        {
            // Bind fails with EADDRNOTAVAIL, as connect() does when every port of the source address is taken.
            services.AddSingleton(new SourceAddresses([NotLocal]));
            services.AddSingleton<ILoggerProvider>(logs);
        });

        for (var i = 0; i < 3; i++)
        {
            var response = await RawConnection.SendAsync(gateway.Ws, RawRequest.Handshake("/raw/room"));
            Assert.Equal(502, response.Status);
            Assert.Contains("no local port left", response.Body);
        }

        Assert.Empty(first.Peers);
        Assert.Empty(second.Peers);
        var metrics = await MetricsScrape.FetchAsync(gateway);
        Assert.Equal(3, metrics.Value("gateway_proxy_source_address_exhausted_total"));
        // Neither a connect failure to retry elsewhere nor a forwarding error of the destination's.
        Assert.Equal(0, metrics.Value("gateway_proxy_connect_retries_total"));
        Assert.Equal(0, metrics.Value("gateway_proxy_errors_total"));
        var state = gateway.Services.GetRequiredService<IProxyStateLookup>();
        Assert.True(state.TryGetCluster("raw", out var cluster));
        Assert.All(cluster.Destinations.Values, d => Assert.NotEqual(DestinationHealth.Unhealthy, d.Health.Passive));

        // One warning for the three, naming the address; no stack trace anywhere.
        var warning = Assert.Single(logs.Records, r => r.Id.Id == 701);
        Assert.Equal(LogLevel.Warning, warning.Level);
        Assert.Contains("192.0.2.1", warning.Message);
        Assert.Null(warning.Exception);
        Assert.DoesNotContain(logs.Records, r => r.Level >= LogLevel.Warning && r.Exception is not null);
    }

    [Fact]
    public async Task A_source_address_without_ports_is_passed_over_for_the_next()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var sockets = new BackendSockets(new SourceAddresses([NotLocal, IPAddress.Parse("127.0.0.2")]));
        var uri = new Uri($"http://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}/");

        for (var i = 0; i < 4; i++)
        {
            using var socket = await sockets.ConnectAsync(uri, CancellationToken.None);
            using var accepted = await listener.AcceptSocketAsync();
            Assert.Equal(IPAddress.Parse("127.0.0.2"), ((IPEndPoint)accepted.RemoteEndPoint!).Address);
        }

        var none = new BackendSockets(new SourceAddresses([NotLocal]));
        await Assert.ThrowsAsync<LocalPortsExhaustedException>(() => none.ConnectAsync(uri, CancellationToken.None));
    }

    [Fact]
    public async Task A_destination_of_another_family_is_connected_from_where_the_kernel_chooses()
    {
        using var listener = new TcpListener(IPAddress.IPv6Loopback, 0);
        listener.Start();
        var sockets = new BackendSockets(new SourceAddresses([IPAddress.Parse("127.0.0.2")]));

        using var socket = await sockets.ConnectAsync(new Uri($"http://[::1]:{((IPEndPoint)listener.LocalEndpoint).Port}/"), CancellationToken.None);
        using var accepted = await listener.AcceptSocketAsync();
        Assert.Equal(IPAddress.IPv6Loopback, ((IPEndPoint)accepted.RemoteEndPoint!).Address);
    }

    [Theory]
    [InlineData("127.0.0.2", "not-an-address", "Gateway:Upstream:SourceAddresses:1", "is not an IP address")]
    [InlineData("127.0.0.2", "127.3", "Gateway:Upstream:SourceAddresses:1", "is not an IP address")]
    [InlineData("0.0.0.0", "127.0.0.2", "Gateway:Upstream:SourceAddresses:0", "not a unicast address")]
    [InlineData("::", "127.0.0.2", "Gateway:Upstream:SourceAddresses:0", "not a unicast address")]
    [InlineData("224.0.0.1", "127.0.0.2", "Gateway:Upstream:SourceAddresses:0", "not a unicast address")]
    [InlineData("::ffff:127.0.0.2", "127.0.0.3", "Gateway:Upstream:SourceAddresses:0", "write it as 127.0.0.2")]
    [InlineData("127.0.0.2", "127.0.0.2", "Gateway:Upstream:SourceAddresses:1", "listed twice")]
    [InlineData("127.0.0.2", "192.0.2.1", "Gateway:Upstream:SourceAddresses:1", "is not an address of this machine")]
    public void Invalid_source_addresses_are_refused_with_their_key(string first, string second, string key, string problem)
    {
        var error = Assert.Throws<GatewayConfigurationException>(() => InMemoryGatewayOptions.Load(
            ("Gateway:Upstream:SourceAddresses:0", first), ("Gateway:Upstream:SourceAddresses:1", second)));
        Assert.Equal(key, error.Key);
        Assert.Contains(problem, error.Message);
    }

    [Fact]
    public void Addresses_of_this_machine_of_either_family_load()
    {
        var options = InMemoryGatewayOptions.Load(
            ("Gateway:Upstream:SourceAddresses:0", "127.0.0.2"), ("Gateway:Upstream:SourceAddresses:1", "::1"));
        Assert.Equal(["127.0.0.2", "::1"], options.Upstream.SourceAddresses);
        Assert.Empty(InMemoryGatewayOptions.Load().Upstream.SourceAddresses);
    }

    private static JsonObject Proxy(params RawBackend[] backends)
    {
        var destinations = new JsonObject();
        for (var i = 0; i < backends.Length; i++)
        {
            destinations[$"d{i + 1}"] = new JsonObject { ["Address"] = backends[i].Address.ToString() };
        }
        return new JsonObject
        {
            ["Routes"] = new JsonObject { ["raw"] = new JsonObject { ["ClusterId"] = "raw", ["Match"] = new JsonObject { ["Path"] = "/raw/{**rest}" } } },
            ["Clusters"] = new JsonObject
            {
                ["raw"] = new JsonObject
                {
                    ["Destinations"] = destinations,
                    // With passive health on, a connect failure would mark the destination down at once: exhaustion must not.
                    ["HealthCheck"] = new JsonObject { ["Passive"] = new JsonObject { ["Enabled"] = true } },
                },
            },
        };
    }
}
