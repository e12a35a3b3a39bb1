using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Lifecycle;
using Gateway.LoadBalancing;
using Gateway.Tests.Infrastructure;
using Gateway.Tests.Relay;
using Microsoft.Extensions.DependencyInjection;
using Yarp.ReverseProxy;

namespace Gateway.Tests.Admin;

[Collection(SerialCollection.Name)]
public sealed class AdminApiTests
{
    private static readonly HttpClient Http = new() { Timeout = TimeSpan.FromSeconds(10) };

    private static JsonObject TwoDestinations(RawBackend one, RawBackend two, bool allowChanges = true)
    {
        var config = RelayConfig.Build(one.Address, RelayConfig.KeepAlive("00:00:30", "00:00:15"));
        config["Gateway"]!["Admin"]!["AllowUnauthenticatedChanges"] = allowChanges;
        var cluster = (JsonObject)config["ReverseProxy"]!["Clusters"]!["raw"]!;
        cluster["Destinations"]!["d2"] = new JsonObject { ["Address"] = two.Address.ToString() };
        cluster["LoadBalancingPolicy"] = "RoundRobin";
        cluster["SessionAffinity"] = new JsonObject { ["Enabled"] = false };
        return config;
    }

    private static async Task<JsonNode> JsonAsync(HttpResponseMessage response, HttpStatusCode expected)
    {
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == expected, $"{(int)response.StatusCode}: {body}");
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        return JsonNode.Parse(body)!;
    }

    /// <summary>
    /// The connection list once it shows <paramref name="count"/> tunnels. A tunnel joins the list right after its 101 is
    /// on the wire, so its client may read the 101 a moment before the list shows the tunnel.
    /// </summary>
    private static Task<JsonNode> ConnectionsAsync(GatewayServer gateway, int count) =>
        Retry.Eventually(async () =>
        {
            var list = await JsonAsync(await Http.GetAsync(new Uri(gateway.Admin, "/connections")), HttpStatusCode.OK);
            Assert.Equal(count, (int)list["total"]!);
            return list;
        }, TimeSpan.FromSeconds(5));

    [Fact]
    public async Task The_connection_list_shows_each_tunnel_and_filters_and_limits()
    {
        await using var one = new RawBackend();
        await using var two = new RawBackend();
        await using var gateway = await GatewayServer.StartAsync(TwoDestinations(one, two));
        var clients = new List<RawWebSocketClient>();
        try
        {
            for (var i = 0; i < 4; i++)
            {
                var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, $"/raw/list{i}");
                clients.Add(client);
                await client.SendAsync(RawFrames.Encode(RawFrame.Text, "12345"u8));
                Assert.NotNull(await client.ReceiveAsync(TimeSpan.FromSeconds(5)));
            }

            var all = await JsonAsync(await Http.GetAsync(new Uri(gateway.Admin, "/connections")), HttpStatusCode.OK);
            Assert.Equal(4, (int)all["total"]!);
            var first = all["connections"]![0]!;
            Assert.Equal("raw", (string)first["route"]!);
            Assert.Equal("raw", (string)first["cluster"]!);
            Assert.Equal("127.0.0.1", (string)first["client"]!);
            Assert.Equal("HTTP/1.1", (string)first["protocol"]!);
            Assert.Equal("ws", (string)first["scheme"]!);
            Assert.Equal(1, (long)first["messagesFromClient"]!);
            Assert.Equal(5, (long)first["bytesFromBackend"]!);
            Assert.True((double)first["ageSeconds"]! >= 0);

            var d2 = await JsonAsync(await Http.GetAsync(new Uri(gateway.Admin, "/connections?destination=d2")), HttpStatusCode.OK);
            Assert.Equal(2, (int)d2["total"]!);
            Assert.All(d2["connections"]!.AsArray(), c => Assert.Equal("d2", (string)c!["destination"]!));
            var limited = await JsonAsync(await Http.GetAsync(new Uri(gateway.Admin, "/connections?limit=1")), HttpStatusCode.OK);
            Assert.Equal(4, (int)limited["total"]!);
            Assert.Single(limited["connections"]!.AsArray());
            await JsonAsync(await Http.GetAsync(new Uri(gateway.Admin, "/connections?limit=none")), HttpStatusCode.BadRequest);
        }
        finally
        {
            foreach (var client in clients)
            {
                await client.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task Closing_one_connection_sends_both_sides_the_code_and_leaves_the_others()
    {
        await using var backend = new RawBackend();
        var config = RelayConfig.Build(backend.Address, RelayConfig.KeepAlive("00:00:30", "00:00:15"));
        config["Gateway"]!["Admin"]!["AllowUnauthenticatedChanges"] = true;
        await using var gateway = await GatewayServer.StartAsync(config);
        await using var victim = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/victim");
        await using var bystander = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/bystander");
        var list = await ConnectionsAsync(gateway, 2);
        var id = (long)list["connections"]![0]!["id"]!;

        await JsonAsync(await Http.PostAsync(new Uri(gateway.Admin, $"/connections/{id}/close?code=1005"), null), HttpStatusCode.BadRequest);
        await JsonAsync(await Http.PostAsync(new Uri(gateway.Admin, "/connections/999999/close"), null), HttpStatusCode.NotFound);
        await JsonAsync(await Http.PostAsync(new Uri(gateway.Admin, $"/connections/{id}/close?code=4000&reason=moving%20you"), null), HttpStatusCode.Accepted);

        var close = await victim.ReceiveAsync(TimeSpan.FromSeconds(5));
        Assert.True(close is { Opcode: RawFrame.Close, CloseCode: 4000 }, $"the client got {close?.ToString() ?? "nothing"}");
        Assert.Equal("moving you", close!.CloseReason);
        Assert.Equal(4000, (await backend.CloseReceived.Task.WaitAsync(TimeSpan.FromSeconds(5))).CloseCode);
        await bystander.SendAsync(RawFrames.Encode(RawFrame.Text, "still here"u8));
        Assert.Equal(RawFrame.Text, (await bystander.ReceiveAsync(TimeSpan.FromSeconds(5)))!.Opcode);
    }

    [Fact]
    public async Task Draining_a_destination_moves_its_tunnels_with_1012_and_sends_new_handshakes_elsewhere_until_undrained()
    {
        await using var one = new RawBackend();
        await using var two = new RawBackend();
        await using var gateway = await GatewayServer.StartAsync(TwoDestinations(one, two));
        var clients = new List<RawWebSocketClient>();
        try
        {
            for (var i = 0; i < 4; i++)
            {
                clients.Add(await RawWebSocketClient.ConnectAsync(gateway.Ws, $"/raw/before{i}"));
            }
            Assert.Equal(2, two.Connections);
            var drainUri = new Uri(gateway.Admin, "/clusters/raw/destinations/d2/drain");
            await JsonAsync(await Http.GetAsync(drainUri), HttpStatusCode.NotFound);

            var started = await JsonAsync(await Http.PostAsync(new Uri(drainUri + "?period=00:00:01"), null), HttpStatusCode.Accepted);
            Assert.Equal(2, (int)started["tunnelsAtStart"]!);
            await Retry.Eventually(() => Assert.Equal(2, two.Received.Count(f => f is { Opcode: RawFrame.Close, CloseCode: 1012 })), TimeSpan.FromSeconds(5));
            foreach (var client in clients)
            {
                await client.SendAsync(RawFrames.CloseFrame(1000)); // the moved ones answer their Close; the rest close
            }
            var progress = await Retry.Eventually(async () =>
            {
                var state = await JsonAsync(await Http.GetAsync(drainUri), HttpStatusCode.OK);
                Assert.Equal(0, (int)state["tunnelsOpen"]!);
                return state;
            }, TimeSpan.FromSeconds(5));
            Assert.True((bool)progress["draining"]!);

            for (var i = 0; i < 4; i++)
            {
                clients.Add(await RawWebSocketClient.ConnectAsync(gateway.Ws, $"/raw/during{i}"));
            }
            Assert.Equal(2, two.Connections); // none new: all four went to d1
            Assert.Equal(6, one.Connections);

            await JsonAsync(await Http.DeleteAsync(drainUri), HttpStatusCode.OK);
            for (var i = 0; i < 4; i++)
            {
                clients.Add(await RawWebSocketClient.ConnectAsync(gateway.Ws, $"/raw/after{i}"));
            }
            Assert.True(two.Connections > 2, "d2 takes handshakes again");
        }
        finally
        {
            foreach (var client in clients)
            {
                await client.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task A_drains_tunnel_counts_are_the_destinations_count_that_load_balancing_reads()
    {
        await using var one = new RawBackend();
        await using var two = new RawBackend();
        await using var gateway = await GatewayServer.StartAsync(TwoDestinations(one, two));
        Assert.True(gateway.Services.GetRequiredService<IProxyStateLookup>().TryGetCluster("raw", out var cluster));
        var d2 = cluster.Destinations["d2"];
        var clients = new List<RawWebSocketClient>();
        try
        {
            for (var i = 0; i < 4; i++)
            {
                clients.Add(await RawWebSocketClient.ConnectAsync(gateway.Ws, $"/raw/count{i}"));
            }
            Assert.Equal(2, DestinationLoad.Tunnels(d2));
            var drainUri = new Uri(gateway.Admin, "/clusters/raw/destinations/d2/drain");

            // An hour's spread of two tunnels: the first closes now, the second in half an hour.
            var started = await JsonAsync(await Http.PostAsync(new Uri(drainUri + "?period=01:00:00"), null), HttpStatusCode.Accepted);
            Assert.Equal(2, (int)started["tunnelsAtStart"]!);
            await Retry.Eventually(async () =>
            {
                var state = await JsonAsync(await Http.GetAsync(drainUri), HttpStatusCode.OK);
                Assert.Equal(1, (int)state["tunnelsOpen"]!);
                Assert.Equal(1, DestinationLoad.Tunnels(d2));
            }, TimeSpan.FromSeconds(10));
            var listed = await JsonAsync(await Http.GetAsync(new Uri(gateway.Admin, "/connections?destination=d2")), HttpStatusCode.OK);
            Assert.Equal(1, (int)listed["total"]!);

            await JsonAsync(await Http.DeleteAsync(drainUri), HttpStatusCode.OK);
            Assert.Equal(1, DestinationLoad.Tunnels(d2));
        }
        finally
        {
            foreach (var client in clients)
            {
                await client.DisposeAsync();
            }
        }
    }

    [Fact]
    public async Task A_handshake_waiting_for_its_backend_counts_on_the_drained_destination_as_the_balancer_sees_it()
    {
        // A backend that accepts the connection and never answers the upgrade: the handshake stays on its way.
        using var silent = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        var backend = new Uri($"http://127.0.0.1:{((IPEndPoint)silent.LocalEndpoint).Port}/");
        var config = RelayConfig.Build(backend, RelayConfig.KeepAlive("00:00:30", "00:00:15"));
        config["Gateway"]!["Admin"]!["AllowUnauthenticatedChanges"] = true;
        await using var gateway = await GatewayServer.StartAsync(config);
        Assert.True(gateway.Services.GetRequiredService<IProxyStateLookup>().TryGetCluster("raw", out var cluster));
        var d1 = cluster.Destinations["d1"];

        var handshake = RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/waiting");
        using var accepted = await silent.AcceptTcpClientAsync().WaitAsync(TimeSpan.FromSeconds(10));
        await Retry.Eventually(() => Assert.Equal(1, DestinationLoad.Tunnels(d1)), TimeSpan.FromSeconds(5));

        var drainUri = new Uri(gateway.Admin, "/clusters/raw/destinations/d1/drain");
        var started = await JsonAsync(await Http.PostAsync(new Uri(drainUri + "?period=00:00:05"), null), HttpStatusCode.Accepted);
        Assert.Equal(1, (int)started["tunnelsAtStart"]!);
        Assert.Equal(1, (int)(await JsonAsync(await Http.GetAsync(drainUri), HttpStatusCode.OK))["tunnelsOpen"]!);
        // Not yet a tunnel the drain could close: the connection list has none.
        Assert.Equal(0, (int)(await JsonAsync(await Http.GetAsync(new Uri(gateway.Admin, "/connections")), HttpStatusCode.OK))["total"]!);

        accepted.Close(); // the backend goes away: the gateway answers 502 and the count comes off
        await Assert.ThrowsAsync<InvalidOperationException>(() => handshake.WaitAsync(TimeSpan.FromSeconds(10)));
        await Retry.Eventually(async () =>
            Assert.Equal(0, (int)(await JsonAsync(await Http.GetAsync(drainUri), HttpStatusCode.OK))["tunnelsOpen"]!), TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task With_a_token_the_api_needs_it_and_health_and_metrics_stay_open()
    {
        var variable = $"GATEWAY_TEST_ADMIN_TOKEN_{Environment.ProcessId}";
        Environment.SetEnvironmentVariable(variable, "s3cret");
        try
        {
            await using var backend = new RawBackend();
            var config = RelayConfig.Build(backend.Address, RelayConfig.KeepAlive("00:00:30", "00:00:15"));
            config["Gateway"]!["Admin"]!["TokenEnvironmentVariable"] = variable;
            await using var gateway = await GatewayServer.StartAsync(config);

            var denied = await Http.GetAsync(new Uri(gateway.Admin, "/connections"));
            Assert.Equal(HttpStatusCode.Unauthorized, denied.StatusCode);
            using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(gateway.Admin, "/connections"));
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "s3cret");
            await JsonAsync(await Http.SendAsync(request), HttpStatusCode.OK);
            using var wrong = new HttpRequestMessage(HttpMethod.Get, new Uri(gateway.Admin, "/connections"));
            wrong.Headers.Authorization = new AuthenticationHeaderValue("Bearer", "s3cret2");
            Assert.Equal(HttpStatusCode.Unauthorized, (await Http.SendAsync(wrong)).StatusCode);
            Assert.Equal(HttpStatusCode.OK, (await Http.GetAsync(new Uri(gateway.Admin, "/metrics"))).StatusCode);
            Assert.Equal(HttpStatusCode.OK, (await Http.GetAsync(new Uri(gateway.Admin, "/healthz"))).StatusCode);
        }
        finally
        {
            Environment.SetEnvironmentVariable(variable, null);
        }
    }

    private static async Task<HttpResponseMessage> SendAsync(HttpMethod method, Uri uri, params (string Name, string Value)[] headers)
    {
        using var request = new HttpRequestMessage(method, uri);
        foreach (var (name, value) in headers)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }
        return await Http.SendAsync(request);
    }

    private static async Task AssertAliveAsync(RawWebSocketClient client)
    {
        await client.SendAsync(RawFrames.Encode(RawFrame.Text, "still here"u8));
        var frame = await client.ReceiveAsync(TimeSpan.FromSeconds(5));
        Assert.True(frame is { Opcode: RawFrame.Text }, $"the tunnel answered {frame?.ToString() ?? "nothing"}");
    }

    [Fact]
    public async Task Without_a_token_the_api_reads_but_changes_nothing_unless_the_operator_allows_it()
    {
        await using var one = new RawBackend();
        await using var two = new RawBackend();
        await using var gateway = await GatewayServer.StartAsync(TwoDestinations(one, two, allowChanges: false));
        await using var victim = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/victim");
        var list = await ConnectionsAsync(gateway, 1);
        var id = (long)list["connections"]![0]!["id"]!;

        var close = await JsonAsync(await Http.PostAsync(new Uri(gateway.Admin, $"/connections/{id}/close?code=4000"), null), HttpStatusCode.Forbidden);
        Assert.Contains("AllowUnauthenticatedChanges", (string)close["error"]!);
        await JsonAsync(await Http.PostAsync(new Uri(gateway.Admin, "/clusters/raw/destinations/d1/drain?period=00:00:05"), null), HttpStatusCode.Forbidden);
        await JsonAsync(await Http.DeleteAsync(new Uri(gateway.Admin, "/clusters/raw/destinations/d1/drain")), HttpStatusCode.Forbidden);
        await JsonAsync(await Http.GetAsync(new Uri(gateway.Admin, "/clusters/raw/destinations/d1/drain")), HttpStatusCode.NotFound);
        await AssertAliveAsync(victim);
    }

    [Fact]
    public async Task Requests_a_web_page_could_send_are_refused_whatever_the_settings()
    {
        await using var one = new RawBackend();
        await using var two = new RawBackend();
        await using var gateway = await GatewayServer.StartAsync(TwoDestinations(one, two));
        await using var victim = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/victim");
        var list = await ConnectionsAsync(gateway, 1);
        var closeUri = new Uri(gateway.Admin, $"/connections/{(long)list["connections"]![0]!["id"]!}/close?code=4000&reason=gotcha");

        // A cross-site form post or fetch carries Origin; a browser's fetch metadata says cross-site; a DNS rebinding page
        // sends its own name as the Host.
        await JsonAsync(await SendAsync(HttpMethod.Post, closeUri, ("Origin", "https://evil.example")), HttpStatusCode.Forbidden);
        await JsonAsync(await SendAsync(HttpMethod.Post, closeUri, ("Origin", "null")), HttpStatusCode.Forbidden);
        await JsonAsync(await SendAsync(HttpMethod.Post, closeUri, ("Sec-Fetch-Site", "cross-site")), HttpStatusCode.Forbidden);
        await JsonAsync(await SendAsync(HttpMethod.Post, closeUri, ("Sec-Fetch-Site", "same-site")), HttpStatusCode.Forbidden);
        await JsonAsync(await SendAsync(HttpMethod.Post, closeUri, ("Host", $"evil.example:{gateway.Admin.Port}")), HttpStatusCode.Forbidden);
        await JsonAsync(await SendAsync(HttpMethod.Get, new Uri(gateway.Admin, "/connections"), ("Host", "evil.example")), HttpStatusCode.Forbidden);
        await AssertAliveAsync(victim);

        // What an operator's curl sends is answered; health and metrics stay open to any probe.
        await JsonAsync(await SendAsync(HttpMethod.Get, new Uri(gateway.Admin, "/connections"), ("Host", $"localhost:{gateway.Admin.Port}")), HttpStatusCode.OK);
        await JsonAsync(await SendAsync(HttpMethod.Get, new Uri(gateway.Admin, "/connections"), ("Sec-Fetch-Site", "none")), HttpStatusCode.OK);
        Assert.Equal(HttpStatusCode.OK, (await SendAsync(HttpMethod.Get, new Uri(gateway.Admin, "/healthz"), ("Host", "gateway-1.internal"))).StatusCode);
        await JsonAsync(await SendAsync(HttpMethod.Post, closeUri), HttpStatusCode.Accepted);
        Assert.Equal(4000, (await victim.ReceiveAsync(TimeSpan.FromSeconds(5)))!.CloseCode);
    }

    [Fact]
    public async Task Drains_of_unknown_destinations_and_absurd_periods_are_refused()
    {
        await using var one = new RawBackend();
        await using var two = new RawBackend();
        await using var gateway = await GatewayServer.StartAsync(TwoDestinations(one, two));
        var clients = new List<RawWebSocketClient>();
        try
        {
            for (var i = 0; i < 4; i++)
            {
                clients.Add(await RawWebSocketClient.ConnectAsync(gateway.Ws, $"/raw/p{i}"));
            }
            for (var i = 0; i < 20; i++)
            {
                await JsonAsync(await Http.PostAsync(new Uri(gateway.Admin, $"/clusters/raw/destinations/made-up-{i}/drain"), null), HttpStatusCode.NotFound);
            }
            await JsonAsync(await Http.PostAsync(new Uri(gateway.Admin, "/clusters/nope/destinations/d2/drain"), null), HttpStatusCode.NotFound);
            var drain = new Uri(gateway.Admin, "/clusters/raw/destinations/d2/drain");
            foreach (var period in new[] { "00:00:00", "00:00:00.5", "100000.00:00:00", "01:00:01", "-00:00:05", "soon" })
            {
                var refused = await JsonAsync(await Http.PostAsync(new Uri(drain + "?period=" + period), null), HttpStatusCode.BadRequest);
                Assert.Contains("00:00:01", (string)refused["error"]!);
            }
            await JsonAsync(await Http.GetAsync(drain), HttpStatusCode.NotFound);
            Assert.True(((DestinationDrains)gateway.Services.GetService(typeof(DestinationDrains))!).IsEmpty);
            foreach (var client in clients)
            {
                await AssertAliveAsync(client);
            }
            // The bounds themselves are fine; a drain by another spelling of the name shows the configured one.
            var started = await JsonAsync(await Http.PostAsync(new Uri(gateway.Admin, "/clusters/RAW/destinations/d2/drain?period=01:00:00"), null), HttpStatusCode.Accepted);
            Assert.Equal("raw", (string)started["cluster"]!);
            Assert.Equal(3600, (double)started["periodSeconds"]!);
        }
        finally
        {
            foreach (var client in clients)
            {
                await client.DisposeAsync();
            }
        }
    }
}
