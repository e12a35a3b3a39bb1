using System.Net;
using System.Net.WebSockets;
using System.Text.Json.Nodes;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Proxy;

/// <summary>Load balancing, cookie affinity and health, with two real backends behind one cluster.</summary>
public sealed class BalancingTests
{
    private static void FastHealthChecks(string cluster, JsonObject config) =>
        config["HealthCheck"] = new JsonObject
        {
            ["Active"] = new JsonObject
            {
                ["Enabled"] = true,
                ["Interval"] = "00:00:00.500",
                ["Timeout"] = "00:00:00.500",
                ["Policy"] = "ConsecutiveFailures",
                ["Path"] = "/healthz",
            },
        };

    [Fact]
    public async Task Clients_without_the_affinity_cookie_spread_over_both_backends()
    {
        await using var b1 = await Backend.StartAsync("b1");
        await using var b2 = await Backend.StartAsync("b2");
        await using var gateway = await GatewayServer.StartAsync(GatewayServer.Config(
            GatewayServer.Proxy([("chat", "/chat", "chat")], [("chat", [b1, b2])])));

        var sockets = new List<ClientWebSocket>();
        var seen = new Dictionary<string, int>();
        try
        {
            for (var i = 0; i < 10; i++)
            {
                var socket = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/chat/lobby", cookies: new CookieContainer());
                sockets.Add(socket);
                var backend = await WebSocketClient.ReceiveWelcomeBackendAsync(socket);
                seen[backend] = seen.GetValueOrDefault(backend) + 1;
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

        // Least connections over 10 concurrent tunnels: an even split.
        Assert.Equal(5, seen.GetValueOrDefault("b1"));
        Assert.Equal(5, seen.GetValueOrDefault("b2"));
    }

    [Fact]
    public async Task A_client_with_its_cookie_stays_on_its_backend_and_moves_when_it_dies()
    {
        var b1 = await Backend.StartAsync("b1");
        await using var b2 = await Backend.StartAsync("b2");
        try
        {
            await using var gateway = await GatewayServer.StartAsync(GatewayServer.Config(
                GatewayServer.Proxy([("chat", "/chat", "chat")], [("chat", [b1, b2])], FastHealthChecks)));

            var cookies = new CookieContainer();
            string home;
            using (var first = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/chat/lobby", cookies: cookies))
            {
                home = await WebSocketClient.ReceiveWelcomeBackendAsync(first);
                var affinity = first.HttpResponseHeaders?.GetValueOrDefault("Set-Cookie")?.FirstOrDefault();
                Assert.NotNull(affinity);
                Assert.StartsWith("gateway-affinity=", affinity);
                Assert.Contains("httponly", affinity, StringComparison.OrdinalIgnoreCase);
                await WebSocketClient.CloseAsync(first);
            }
            var other = home == "b1" ? "b2" : "b1";

            // Weigh the home backend down with two more of this client's tunnels, so that least-connections
            // balancing alone would now choose the other backend: only the cookie can keep the client home.
            using var ballast1 = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/chat/lobby", cookies: cookies);
            using var ballast2 = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/chat/lobby", cookies: cookies);
            Assert.Equal(home, await WebSocketClient.ReceiveWelcomeBackendAsync(ballast1));
            Assert.Equal(home, await WebSocketClient.ReceiveWelcomeBackendAsync(ballast2));
            using (var stranger = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/chat/lobby", cookies: new CookieContainer()))
            {
                Assert.Equal(other, await WebSocketClient.ReceiveWelcomeBackendAsync(stranger));
                await WebSocketClient.CloseAsync(stranger);
            }

            for (var i = 0; i < 20; i++)
            {
                using var again = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/chat/lobby", cookies: cookies);
                Assert.Equal(home, await WebSocketClient.ReceiveWelcomeBackendAsync(again));
                await WebSocketClient.CloseAsync(again);
            }

            // The home backend goes away: the same client, same cookie, lands on the healthy one.
            await (home == "b1" ? b1 : b2).StopAsync();
            var moved = await Retry.Eventually(async () =>
            {
                using var socket = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/chat/lobby", cookies: cookies);
                var backend = await WebSocketClient.ReceiveWelcomeBackendAsync(socket);
                await WebSocketClient.CloseAsync(socket);
                return backend;
            }, TimeSpan.FromSeconds(15));
            Assert.Equal(other, moved);

            // ...and stays there: the new backend re-issued the cookie.
            for (var i = 0; i < 3; i++)
            {
                using var socket = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/chat/lobby", cookies: cookies);
                Assert.Equal(other, await WebSocketClient.ReceiveWelcomeBackendAsync(socket));
                await WebSocketClient.CloseAsync(socket);
            }
        }
        finally
        {
            await b1.DisposeAsync();
        }
    }

    [Theory]
    [InlineData("HashCookie", "^[0-9a-f]{16}$")] // XxHash64 of the destination id (System.IO.Hashing)
    [InlineData("ArrCookie", "^[0-9A-F]{64}$")] // SHA-256, as IIS ARR sends it
    public async Task A_hashed_affinity_cookie_keeps_a_client_on_its_backend_against_the_balancer(string policy, string hashShape)
    {
        await using var b1 = await Backend.StartAsync("b1");
        await using var b2 = await Backend.StartAsync("b2");
        await using var gateway = await GatewayServer.StartAsync(GatewayServer.Config(
            GatewayServer.Proxy([("chat", "/chat", "chat")], [("chat", [b1, b2])], (_, config) =>
                config["SessionAffinity"] = new JsonObject { ["Enabled"] = true, ["Policy"] = policy, ["AffinityKeyName"] = "room-affinity" })));

        var cookies = new CookieContainer();
        using var first = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/chat/lobby", cookies: cookies);
        var home = await WebSocketClient.ReceiveWelcomeBackendAsync(first);
        var affinity = first.HttpResponseHeaders?.GetValueOrDefault("Set-Cookie")?.SingleOrDefault(c => c.StartsWith("room-affinity=", StringComparison.Ordinal));
        Assert.NotNull(affinity);
        // A hash of the destination, not the encrypted id the Cookie policy sends.
        Assert.Matches(hashShape, affinity["room-affinity=".Length..].Split(';')[0]);

        // The home backend already holds this tunnel, so least-connections balancing alone would choose the other one
        // for every new tunnel; the cookie keeps all of them home.
        var ballast = new List<ClientWebSocket>();
        try
        {
            for (var i = 0; i < 4; i++)
            {
                var socket = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/chat/lobby", cookies: cookies);
                ballast.Add(socket);
                Assert.Equal(home, await WebSocketClient.ReceiveWelcomeBackendAsync(socket));
            }
            using var stranger = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/chat/lobby", cookies: new CookieContainer());
            Assert.NotEqual(home, await WebSocketClient.ReceiveWelcomeBackendAsync(stranger));
            await WebSocketClient.CloseAsync(stranger);
        }
        finally
        {
            foreach (var socket in ballast)
            {
                await WebSocketClient.CloseAsync(socket);
                socket.Dispose();
            }
            await WebSocketClient.CloseAsync(first);
        }
    }

    [Fact]
    public async Task With_one_backend_down_new_connections_succeed_on_the_other()
    {
        await using var alive = await Backend.StartAsync("alive");
        var dead = await Backend.StartAsync("dead");
        await dead.StopAsync(); // its port now refuses connections
        await using var gateway = await GatewayServer.StartAsync(GatewayServer.Config(
            GatewayServer.Proxy([("chat", "/chat", "chat")], [("chat", [alive, dead])], FastHealthChecks)));

        // Within a bounded time the dead destination is marked unhealthy; from then on every connection succeeds.
        await Retry.Eventually(async () =>
        {
            for (var i = 0; i < 6; i++)
            {
                using var socket = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/chat/lobby", cookies: new CookieContainer());
                Assert.Equal("alive", await WebSocketClient.ReceiveWelcomeBackendAsync(socket));
                await WebSocketClient.CloseAsync(socket);
            }
            return true;
        }, TimeSpan.FromSeconds(10));
    }
}
