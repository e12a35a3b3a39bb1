using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json.Nodes;
using Gateway.Tests.Handshake;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Model;

namespace Gateway.Tests.Proxy;

/// <summary>
/// A destination that refuses connections (a port bound but not listening) next to a real backend: requests that
/// load balancing sends to the dead one are retried on the live one, and the dead one is reported to passive health.
/// Serial because the assertions are exact metric values: every gateway in the test process exports the instruments
/// of every meter named Gateway, so a gateway of a test running alongside would add to (or, when disposed, drop) them.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class ConnectRetryTests : IAsyncLifetime
{
    private const string Retries = "gateway_proxy_connect_retries_total";
    private const string Errors = "gateway_proxy_errors_total";

    private readonly TestCertificates _certificates = new();
    private readonly List<RefusingPort> _deadPorts = new();
    private Backend _alive = null!;

    public async Task InitializeAsync() => _alive = await Backend.StartAsync("alive");

    public async Task DisposeAsync()
    {
        await _alive.DisposeAsync();
        _certificates.Dispose();
        foreach (var port in _deadPorts)
        {
            port.Dispose();
        }
    }

    [Theory]
    [InlineData("LeastRequests", Transport.Ws)]
    [InlineData("RoundRobin", Transport.Ws)]
    [InlineData("LeastRequests", Transport.WssHttp2)]
    public async Task Every_handshake_succeeds_on_the_live_destination(string policy, Transport transport)
    {
        // No health checks at all: nothing keeps the dead destination out of load balancing, so every pick of it is retried.
        await using var gateway = await StartAsync(Cluster(policy, passive: false, ("dead", DeadAddress()), ("alive", _alive.Address)));

        const int Handshakes = 20;
        var sockets = new List<ClientWebSocket>();
        try
        {
            // Held open: least-requests then prefers the dead destination (no tunnels) for every handshake after the first.
            for (var i = 0; i < Handshakes; i++)
            {
                var socket = await WebSocketClient.ConnectAsync(gateway, transport, "/chat/lobby", _certificates, cookies: new CookieContainer());
                sockets.Add(socket);
                Assert.Equal("alive", await WebSocketClient.ReceiveWelcomeBackendAsync(socket));
                // One affinity cookie, for the destination that served: none left over from a failed attempt.
                Assert.StartsWith("gateway-affinity=", Assert.Single(socket.HttpResponseHeaders!["Set-Cookie"]));
            }
        }
        finally
        {
            foreach (var socket in sockets)
            {
                await WebSocketClient.CloseAsync(socket);
                socket.Dispose();
            }
        }

        var metrics = await MetricsScrape.FetchAsync(gateway);
        var retries = metrics.Value(Retries, ("cluster", "chat"), ("destination", "dead"));
        // Least requests: all but possibly the first (a tie at 0 tunnels); round robin: every other handshake.
        var least = policy == "RoundRobin" ? Handshakes / 2 - 1 : Handshakes - 1;
        Assert.True(retries >= least && retries <= Handshakes, $"{retries} retries; metrics:\n{metrics.Text}");
        Assert.Equal(retries, metrics.Value(Retries));
        // Retried and served: not a failed request.
        Assert.Equal(0, metrics.Value(Errors));
    }

    [Fact]
    public async Task With_passive_health_the_dead_destination_is_unhealthy_after_its_first_refusal()
    {
        await using var gateway = await StartAsync(Cluster("LeastRequests", passive: true, ("dead", DeadAddress()), ("alive", _alive.Address)));

        var sockets = new List<ClientWebSocket>();
        try
        {
            // At most two handshakes until least requests picks the dead destination (the second, with one tunnel on the live one).
            for (var i = 0; i < 2 && (await MetricsScrape.FetchAsync(gateway)).Value(Retries) == 0; i++)
            {
                sockets.Add(await ConnectToAliveAsync(gateway));
            }
            var metrics = await MetricsScrape.FetchAsync(gateway);
            Assert.Equal(1, metrics.Value(Retries, ("destination", "dead")));

            // Reported at once: YARP's state and the health gauge say so (the cluster's destination list is rebuilt in the background).
            var state = gateway.Services.GetRequiredService<IProxyStateLookup>();
            Assert.True(state.TryGetCluster("chat", out var cluster));
            Assert.Equal(DestinationHealth.Unhealthy, cluster.Destinations["dead"].Health.Passive);
            await Retry.Eventually(async () =>
            {
                var health = await MetricsScrape.FetchAsync(gateway);
                Assert.Equal(0, health.Value("gateway_destination_health", ("cluster", "chat"), ("destination", "dead")));
                Assert.Equal(1, health.Value("gateway_destination_health", ("cluster", "chat"), ("destination", "alive")));
                Assert.DoesNotContain(cluster.DestinationsState.AvailableDestinations, d => d.DestinationId == "dead");
            }, TimeSpan.FromSeconds(5));

            // Least requests would choose the dead destination for each of these (the live one holds tunnels): it is not offered any more.
            for (var i = 0; i < 5; i++)
            {
                sockets.Add(await ConnectToAliveAsync(gateway));
            }
            metrics = await MetricsScrape.FetchAsync(gateway);
            Assert.Equal(1, metrics.Value(Retries));
            Assert.Equal(0, metrics.Value(Errors));
        }
        finally
        {
            foreach (var socket in sockets)
            {
                await WebSocketClient.CloseAsync(socket);
                socket.Dispose();
            }
        }
    }

    [Fact]
    public async Task With_every_destination_dead_the_client_gets_502_after_a_bounded_number_of_attempts()
    {
        // Four dead destinations, three attempts: two retries, then the last error is the answer.
        await using var gateway = await StartAsync(Cluster("RoundRobin", passive: true,
            ("dead-1", DeadAddress()), ("dead-2", DeadAddress()), ("dead-3", DeadAddress()), ("dead-4", DeadAddress())));

        var clock = Stopwatch.StartNew();
        var response = await RawConnection.SendAsync(gateway.Ws, RawRequest.Handshake("/chat/lobby"));
        clock.Stop();

        Assert.Equal(502, response.Status);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"took {clock.Elapsed}");
        var metrics = await MetricsScrape.FetchAsync(gateway);
        Assert.Equal(2, metrics.Value(Retries, ("cluster", "chat")));
        Assert.Equal(1, metrics.Value(Errors, ("cluster", "chat"), ("error", "Request")));
        // The three that were tried are reported; the fourth was never contacted.
        var state = gateway.Services.GetRequiredService<IProxyStateLookup>();
        Assert.True(state.TryGetCluster("chat", out var cluster));
        Assert.Equal(3, cluster.Destinations.Values.Count(d => d.Health.Passive == DestinationHealth.Unhealthy));
    }

    [Fact]
    public async Task A_client_whose_affinity_destination_died_is_moved_and_given_a_new_cookie()
    {
        await using var other = await Backend.StartAsync("other");
        // No health checks: only the retry can move the client.
        await using var gateway = await StartAsync(Cluster("LeastRequests", passive: false, ("alive", _alive.Address), ("other", other.Address)));

        // A client whose cookie names "other": at most two fresh clients, since with a tunnel held on "alive" least requests picks "other".
        var cookies = new CookieContainer();
        var held = new List<ClientWebSocket>();
        string? landed = null;
        for (var i = 0; i < 2 && landed != "other"; i++)
        {
            cookies = new CookieContainer();
            var socket = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/chat/lobby", cookies: cookies);
            held.Add(socket);
            landed = await WebSocketClient.ReceiveWelcomeBackendAsync(socket);
        }
        foreach (var socket in held)
        {
            await WebSocketClient.CloseAsync(socket);
            socket.Dispose();
        }
        Assert.Equal("other", landed);

        await other.StopAsync(); // the client's backend: its port now refuses connections

        using (var moved = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/chat/lobby", cookies: cookies))
        {
            Assert.Equal("alive", await WebSocketClient.ReceiveWelcomeBackendAsync(moved));
            var cookie = moved.HttpResponseHeaders?.GetValueOrDefault("Set-Cookie");
            Assert.NotNull(cookie);
            // One cookie, for the destination that served: not also the failed attempt's.
            Assert.StartsWith("gateway-affinity=", Assert.Single(cookie));
            await WebSocketClient.CloseAsync(moved);
        }

        // The new cookie holds: no more attempts on the dead destination.
        for (var i = 0; i < 3; i++)
        {
            using var socket = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/chat/lobby", cookies: cookies);
            Assert.Equal("alive", await WebSocketClient.ReceiveWelcomeBackendAsync(socket));
            await WebSocketClient.CloseAsync(socket);
        }
        var metrics = await MetricsScrape.FetchAsync(gateway);
        Assert.Equal(1, metrics.Value(Retries, ("destination", "other")));
        Assert.Equal(0, metrics.Value(Errors));
    }

    [Fact]
    public async Task Plain_requests_without_a_body_are_retried_and_requests_with_one_are_not()
    {
        await using var gateway = await StartAsync(Cluster("RoundRobin", passive: false, ("dead", DeadAddress()), ("alive", _alive.Address)));
        // Without cookies: an affinity cookie would keep every request on the destination that served the first.
        using var http = new HttpClient(new SocketsHttpHandler { UseCookies = false }) { BaseAddress = gateway.Http, Timeout = TimeSpan.FromSeconds(10) };

        for (var i = 0; i < 10; i++)
        {
            Assert.Equal("alive", await http.GetStringAsync("/whoami"));
        }
        var afterGets = (await MetricsScrape.FetchAsync(gateway)).Value(Retries, ("destination", "dead"));
        // Round robin over fresh requests: every other one is first sent to the dead destination.
        Assert.Equal(5, afterGets);

        // A body is read as it is sent, so such a request is forwarded once: round robin sends every other one to the dead destination.
        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 4; i++)
        {
            using var response = await http.PostAsync("/whoami", new StringContent("body", Encoding.UTF8));
            statuses.Add(response.StatusCode);
        }
        Assert.Contains(HttpStatusCode.BadGateway, statuses);
        var metrics = await MetricsScrape.FetchAsync(gateway);
        Assert.Equal(afterGets, metrics.Value(Retries));
        Assert.Equal(statuses.Count(s => s == HttpStatusCode.BadGateway), metrics.Value(Errors, ("destination", "dead"), ("error", "Request")));
    }

    private async Task<ClientWebSocket> ConnectToAliveAsync(GatewayServer gateway)
    {
        var socket = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/chat/lobby", cookies: new CookieContainer());
        Assert.Equal("alive", await WebSocketClient.ReceiveWelcomeBackendAsync(socket));
        return socket;
    }

    private Task<GatewayServer> StartAsync(JsonObject cluster)
    {
        var (certificate, key, _) = _certificates.IssueServer("server", "localhost");
        var proxy = new JsonObject
        {
            ["Routes"] = new JsonObject
            {
                ["all"] = new JsonObject { ["ClusterId"] = "chat", ["Match"] = new JsonObject { ["Path"] = "/{**rest}" } },
            },
            ["Clusters"] = new JsonObject { ["chat"] = cluster },
        };
        return GatewayServer.StartAsync(GatewayServer.Config(proxy, [new JsonObject { ["Path"] = certificate, ["KeyPath"] = key }]));
    }

    private static JsonObject Cluster(string policy, bool passive, params (string Name, Uri Address)[] destinations)
    {
        var list = new JsonObject();
        foreach (var (name, address) in destinations)
        {
            list[name] = new JsonObject { ["Address"] = address.ToString() };
        }
        var cluster = new JsonObject { ["LoadBalancingPolicy"] = policy, ["Destinations"] = list };
        if (passive)
        {
            cluster["HealthCheck"] = new JsonObject
            {
                ["Passive"] = new JsonObject { ["Enabled"] = true, ["Policy"] = "TransportFailureRate", ["ReactivationPeriod"] = "00:05:00" },
            };
        }
        return cluster;
    }

    /// <summary>A port that refuses connections for the rest of the test.</summary>
    private Uri DeadAddress()
    {
        var port = new RefusingPort();
        _deadPorts.Add(port);
        return port.Address;
    }
}
