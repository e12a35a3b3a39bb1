using System.Net;
using System.Net.WebSockets;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;

namespace Gateway.Tests.LoadBalancing;

/// <summary>The real gateway in front of two real chat backends, rooms routed by <c>route:room</c>.</summary>
public sealed class RoomRoutingTests
{
    /// <summary>Rooms at <c>/chat/{room}</c> by hash; <c>/lobby/...</c> to the same cluster carries no key.</summary>
    internal static JsonObject RoomsConfig(Backend[] backends, string? balanceFactor = null)
    {
        var metadata = new JsonObject { ["HashKey"] = "route:room" };
        if (balanceFactor is not null)
        {
            metadata["HashBalanceFactor"] = balanceFactor;
        }
        var destinations = new JsonObject();
        foreach (var backend in backends)
        {
            destinations[backend.Instance] = new JsonObject { ["Address"] = backend.Address.ToString() };
        }
        return GatewayServer.Config(new JsonObject
        {
            ["Routes"] = new JsonObject
            {
                ["rooms"] = new JsonObject { ["ClusterId"] = "chat", ["Match"] = new JsonObject { ["Path"] = "/chat/{room}" } },
                ["lobby"] = new JsonObject
                {
                    ["ClusterId"] = "chat",
                    ["Match"] = new JsonObject { ["Path"] = "/lobby/{**rest}" },
                    ["Transforms"] = new JsonArray(new JsonObject { ["PathPattern"] = "/chat/lobby" }),
                },
            },
            ["Clusters"] = new JsonObject
            {
                ["chat"] = new JsonObject { ["LoadBalancingPolicy"] = "ConsistentHash", ["Metadata"] = metadata, ["Destinations"] = destinations },
            },
        });
    }

    internal static async Task<(ClientWebSocket Socket, string Backend, int Members)> JoinAsync(GatewayServer gateway, string path)
    {
        var socket = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, path);
        using var welcome = JsonDocument.Parse(await WebSocketClient.ReceiveTextAsync(socket));
        Assert.Equal("welcome", welcome.RootElement.GetProperty("type").GetString());
        return (socket, welcome.RootElement.GetProperty("backend").GetString()!, welcome.RootElement.GetProperty("members").GetInt32());
    }

    private static async Task LeaveAllAsync(IEnumerable<ClientWebSocket> sockets)
    {
        foreach (var socket in sockets)
        {
            if (socket.State == WebSocketState.Open)
            {
                await WebSocketClient.CloseAsync(socket);
            }
            socket.Dispose();
        }
    }

    [Fact]
    public async Task Two_users_of_one_room_meet_on_one_backend_and_see_each_others_messages()
    {
        await using var b1 = await Backend.StartAsync("b1");
        await using var b2 = await Backend.StartAsync("b2");
        await using var gateway = await GatewayServer.StartAsync(RoomsConfig([b1, b2]));

        var alice = await JoinAsync(gateway, "/chat/red");
        var bob = await JoinAsync(gateway, "/chat/red");
        try
        {
            // Least connections would have sent Bob to the idle backend; the room's hash sends him to Alice's.
            Assert.Equal(alice.Backend, bob.Backend);
            Assert.Equal(1, alice.Members);
            Assert.Equal(2, bob.Members);

            await WebSocketClient.SendTextAsync(alice.Socket, "hello from alice");
            Assert.Equal("hello from alice", await WebSocketClient.ReceiveTextAsync(bob.Socket));
            Assert.Equal("hello from alice", await WebSocketClient.ReceiveTextAsync(alice.Socket));
            await WebSocketClient.SendTextAsync(bob.Socket, "hi alice");
            Assert.Equal("hi alice", await WebSocketClient.ReceiveTextAsync(alice.Socket));
        }
        finally
        {
            await LeaveAllAsync([alice.Socket, bob.Socket]);
        }
    }

    [Fact]
    public async Task Rooms_spread_over_both_backends_where_any_replica_would_put_them()
    {
        await using var b1 = await Backend.StartAsync("b1");
        await using var b2 = await Backend.StartAsync("b2");
        // No bound: the placement is the hash's alone, so it can be compared with a policy computed here.
        await using var gateway = await GatewayServer.StartAsync(RoomsConfig([b1, b2], balanceFactor: "0"));

        var rooms = Enumerable.Range(1, 12).Select(i => $"room-{i}").ToArray();
        var replica = HashClusters.Create(["b1", "b2"], "route:room", balanceFactor: "0");
        var policy = HashClusters.Policy();
        var sockets = new List<ClientWebSocket>();
        var placed = new Dictionary<string, string>();
        try
        {
            foreach (var room in rooms)
            {
                var member = await JoinAsync(gateway, $"/chat/{room}");
                sockets.Add(member.Socket);
                placed[room] = member.Backend;
            }
        }
        finally
        {
            await LeaveAllAsync(sockets);
        }

        foreach (var room in rooms)
        {
            var context = new DefaultHttpContext();
            context.Request.RouteValues["room"] = room;
            var expected = policy.PickDestination(context, replica, replica.DestinationsState.AllDestinations)!.DestinationId;
            Assert.True(expected == placed[room], $"{room}: the gateway chose {placed[room]}, another replica would choose {expected}");
        }
        Assert.Contains("b1", placed.Values);
        Assert.Contains("b2", placed.Values);
    }

    [Theory]
    [InlineData(null)] // the default: no bound
    [InlineData("1.25")] // the bound on: it places new rooms only
    public async Task Every_member_of_a_room_meets_the_others_on_one_backend(string? balanceFactor)
    {
        await using var b1 = await Backend.StartAsync("b1");
        await using var b2 = await Backend.StartAsync("b2");
        await using var b3 = await Backend.StartAsync("b3");
        await using var gateway = await GatewayServer.StartAsync(RoomsConfig([b1, b2, b3], balanceFactor));

        var split = new List<string>();
        var sockets = new List<ClientWebSocket>();
        try
        {
            // Issue 22: with one tunnel open, ⌈1.25 × 2 / 3⌉ = 1, so every room's second member was sent elsewhere.
            foreach (var room in Enumerable.Range(1, 10).Select(i => $"pair-{i}"))
            {
                var members = new[] { await JoinAsync(gateway, $"/chat/{room}"), await JoinAsync(gateway, $"/chat/{room}"), await JoinAsync(gateway, $"/chat/{room}") };
                sockets.AddRange(members.Select(m => m.Socket));
                if (members.Select(m => m.Backend).Distinct().Count() > 1 || !members.Select(m => m.Members).SequenceEqual([1, 2, 3]))
                {
                    split.Add($"{room}: {string.Join(", ", members.Select(m => $"{m.Backend} ({m.Members})"))}");
                }
            }
        }
        finally
        {
            await LeaveAllAsync(sockets);
        }
        Assert.True(split.Count == 0, $"rooms split: {string.Join("; ", split)}");
    }

    [Theory]
    [InlineData(true)] // the lean HTTP/1.1 path
    [InlineData(false)] // Kestrel's: the tunnel's end is seen through the same hook, the end of the request
    public async Task With_the_bound_on_a_crowded_room_stays_whole_new_rooms_go_elsewhere_and_a_room_left_empty_goes_home(bool leanUpgrades)
    {
        await using var b1 = await Backend.StartAsync("b1");
        await using var b2 = await Backend.StartAsync("b2");
        var config = RoomsConfig([b1, b2], balanceFactor: "1.25");
        config["Gateway"]!["LeanUpgrades"] = leanUpgrades;
        await using var gateway = await GatewayServer.StartAsync(config);
        // Where the hash alone puts a room, as any replica computes it.
        var replica = HashClusters.Create(["b1", "b2"], "route:room", balanceFactor: "0");
        var policy = HashClusters.Policy();
        string HomeOf(string room)
        {
            var context = new DefaultHttpContext();
            context.Request.RouteValues["room"] = room;
            return policy.PickDestination(context, replica, replica.DestinationsState.AllDestinations)!.DestinationId;
        }
        var home = HomeOf("crowded");
        var newcomer = Enumerable.Range(1, 100).Select(i => $"new-{i}").First(room => HomeOf(room) == home);

        var crowd = new List<ClientWebSocket>();
        ClientWebSocket? elsewhere = null;
        try
        {
            // 1.25 × (2 + 1) / 2 rounds up to 2: from the third member on, the room's backend is over the bound, and
            // its members still follow the ones already there.
            for (var i = 1; i <= 4; i++)
            {
                var member = await JoinAsync(gateway, "/chat/crowded");
                crowd.Add(member.Socket);
                Assert.Equal(home, member.Backend);
                Assert.Equal(i, member.Members);
            }
            // A room with nobody here yet is placed by the bound: its own backend is full, so the other one.
            var placed = await JoinAsync(gateway, $"/chat/{newcomer}");
            elsewhere = placed.Socket;
            Assert.NotEqual(home, placed.Backend);

            await LeaveAllAsync(crowd);
            crowd.Clear();
            await LeaveAllAsync([elsewhere]);
            elsewhere = null;
        }
        finally
        {
            await LeaveAllAsync(elsewhere is null ? crowd : [.. crowd, elsewhere]);
        }

        // Once its only tunnel has ended, the room is new again and goes to its own backend, now idle.
        await Retry.Eventually(async () =>
        {
            var member = await JoinAsync(gateway, $"/chat/{newcomer}");
            await LeaveAllAsync([member.Socket]);
            Assert.Equal(home, member.Backend);
        }, TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task Requests_without_the_key_are_balanced_by_least_connections()
    {
        await using var b1 = await Backend.StartAsync("b1");
        await using var b2 = await Backend.StartAsync("b2");
        await using var gateway = await GatewayServer.StartAsync(RoomsConfig([b1, b2]));

        var sockets = new List<ClientWebSocket>();
        var seen = new List<string>();
        try
        {
            for (var i = 0; i < 4; i++)
            {
                var member = await JoinAsync(gateway, "/lobby/any");
                sockets.Add(member.Socket);
                seen.Add(member.Backend);
            }
        }
        finally
        {
            await LeaveAllAsync(sockets);
        }
        Assert.Equal(2, seen.Count(b => b == "b1"));
        Assert.Equal(2, seen.Count(b => b == "b2"));
    }

    [Fact]
    public async Task The_demo_configuration_keeps_every_tab_of_a_room_on_one_backend_and_sets_no_affinity_cookie()
    {
        await using var b1 = await Backend.StartAsync("chat-1");
        await using var b2 = await Backend.StartAsync("chat-2");
        var demo = await DemoConfig.LoadAsync(b1, b2);
        await using var gateway = await GatewayServer.StartAsync(demo);

        // One browser: its tabs share a cookie jar, as they would share an affinity cookie.
        var browser = new CookieContainer();
        var sockets = new List<ClientWebSocket>();
        var placed = new Dictionary<string, HashSet<string>>();
        try
        {
            foreach (var room in new[] { "red", "blue", "red", "green", "blue", "red", "amber", "green", "teal", "plum" })
            {
                var socket = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, $"/chat/{room}", cookies: browser, subprotocols: ["chat.v2"]);
                sockets.Add(socket);
                Assert.Null(socket.HttpResponseHeaders?.GetValueOrDefault("Set-Cookie"));
                var backend = await WebSocketClient.ReceiveWelcomeBackendAsync(socket);
                (placed.TryGetValue(room, out var set) ? set : placed[room] = []).Add(backend);
            }
        }
        finally
        {
            await LeaveAllAsync(sockets);
        }

        Assert.All(placed, room => Assert.Single(room.Value));
        Assert.Equal(2, placed.Values.Select(v => v.Single()).Distinct().Count());
        Assert.Empty(browser.GetAllCookies());
    }
}
