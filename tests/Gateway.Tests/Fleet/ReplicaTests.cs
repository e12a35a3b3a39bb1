using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Tests.Handshake;
using Gateway.Tests.Infrastructure;
using Gateway.Tests.Listeners;
using Xunit.Abstractions;

namespace Gateway.Tests.Fleet;

/// <summary>
/// Replicas shown end to end: three gateway processes behind HAProxy in TCP mode, which opens every connection with a
/// PROXY protocol v2 header and hands consecutive connections to consecutive replicas (<c>roundrobin</c>). They share
/// one file and one key directory, empty when the three start together. Two backends; each client connects from a
/// loopback address of its own (127.0.0.11 and up, never HAProxy's 127.0.0.1), and the replica that took it is found
/// by that address in each replica's admin API.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class ReplicaTests(ITestOutputHelper output) : IDisposable
{
    private const string AffinityCookie = "gateway-affinity";
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan Within = TimeSpan.FromSeconds(10);

    private readonly string _directory = Directory.CreateTempSubdirectory("gateway-replicas-").FullName;
    private readonly HttpClient _http = new() { Timeout = TimeSpan.FromSeconds(2) };

    public void Dispose()
    {
        _http.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    [HaproxyFact]
    public async Task Behind_HAProxy_every_replica_honours_one_cookie_sends_a_room_to_one_backend_and_passes_on_the_client_address()
    {
        await using var b1 = await ProbeBackend.StartAsync();
        await using var b2 = await ProbeBackend.StartAsync();
        var keys = Path.Combine(_directory, "keys");
        var config = WriteConfig(keys, b1.Address, b2.Address);

        var replicas = Enumerable.Range(0, 3).Select(i => GatewayReplica.Start(i, config)).ToList();
        try
        {
            await Task.WhenAll(replicas.Select(r => r.WaitReadyAsync(StartTimeout)));
            // Started together on an empty directory, they made one key between them: one replica created it under
            // the directory's lock (KeyRingSeed, event 1010), the others found it there (1011).
            Assert.Single(Directory.GetFiles(keys, "key-*.xml"));
            await Retry.Eventually(() =>
            {
                Assert.Single(replicas, r => r.Output.Contains("KeyRingSeed[1010]", StringComparison.Ordinal));
                Assert.Equal(2, replicas.Count(r => r.Output.Contains("KeyRingSeed[1011]", StringComparison.Ordinal)));
            }, Within);

            await using var haproxy = await Haproxy.StartAsync(new HaproxyFrontend("fleet", replicas.Select(r => r.Listener).ToArray(), "send-proxy-v2"));
            var fleet = new Fleet(haproxy.Frontends["fleet"], replicas, [("b1", b1), ("b2", b2)], _http);
            try
            {
                await AffinityAsync(fleet);
                await RoomsAsync(fleet);
            }
            finally
            {
                foreach (var landing in fleet.Landed)
                {
                    await landing.Client.DisposeAsync();
                }
            }

            // (c) Every backend request carried its client's own address, which each replica took from the PROXY header.
            Assert.All(fleet.Landed, l => Assert.Equal(l.From.ToString(), l.ForwardedFor));
            // The replicas' own counts agree with where the connections were found, and no PROXY header was refused.
            foreach (var replica in replicas)
            {
                var scrape = await MetricsScrape.FetchAsync(replica.Admin);
                Assert.Equal(fleet.Landed.Count(l => l.Replica == replica.Index), scrape.Value("gateway_websocket_connections_opened_total"));
                Assert.Equal(0, scrape.Value("gateway_proxy_protocol_rejected_total"));
            }
        }
        catch
        {
            foreach (var replica in replicas)
            {
                output.WriteLine($"--- replica {replica.Index}:\n{replica.Output}");
            }
            throw;
        }
        finally
        {
            foreach (var replica in replicas)
            {
                await replica.DisposeAsync();
            }
        }
    }

    /// <summary>(a) The affinity cookie one replica issued takes its client to the same backend through the other two.</summary>
    private static async Task AffinityAsync(Fleet fleet)
    {
        // One client per replica, kept open: an idle replica sends a client without a cookie to the first destination
        // (least connections, ties to the first).
        var held = new List<Landing>();
        for (var i = 1; i <= 3; i++)
        {
            held.Add(await fleet.OpenAsync($"/sticky/c{i}"));
        }
        Assert.Equal(3, held.Select(l => l.Replica).Distinct().Count());
        var first = held[0].Backend;
        Assert.All(held, l => Assert.Equal(first, l.Backend));

        // The fourth goes round to replica A again, which has a client on the first backend already: the other one,
        // named in the cookie it issues.
        var issued = await fleet.OpenAsync("/sticky/c4");
        held.Add(issued);
        var a = held[0].Replica;
        Assert.Equal(a, issued.Replica);
        Assert.NotEqual(first, issued.Backend);
        var cookie = issued.AffinityCookie;
        Assert.NotNull(cookie);
        await fleet.CloseAsync(held);

        // B and C, idle again, would send a new client to the first backend: with A's cookie it reaches A's choice, and
        // no new cookie is issued (each read A's: a cookie it could not decrypt would be replaced).
        var onB = await fleet.OpenAsync("/sticky/c5", cookie);
        var onC = await fleet.OpenAsync("/sticky/c6", cookie);
        Assert.Equal(new[] { 0, 1, 2 }.Except([a]).Order(), new[] { onB.Replica, onC.Replica }.Order());
        Assert.All([onB, onC], l =>
        {
            Assert.Equal(issued.Backend, l.Backend);
            Assert.Null(l.AffinityCookie);
        });
        await fleet.CloseAsync([onB, onC]);
    }

    /// <summary>(b) A room reaches the same backend through every replica, and the rooms are spread over both.</summary>
    private static async Task RoomsAsync(Fleet fleet)
    {
        var homes = new Dictionary<string, string>();
        foreach (var room in new[] { "lobby", "kitchen", "garden", "attic" })
        {
            var members = new List<Landing>();
            for (var i = 1; i <= 3; i++)
            {
                members.Add(await fleet.OpenAsync($"/rooms/{room}/m{i}"));
            }
            Assert.Equal(3, members.Select(l => l.Replica).Distinct().Count());
            homes[room] = members[0].Backend;
            Assert.All(members, l => Assert.Equal(homes[room], l.Backend));
            await fleet.CloseAsync(members);
        }
        // The key decides, not a first-destination default: with these names the rooms fall on both backends.
        Assert.Equal(2, homes.Values.Distinct().Count());
    }

    /// <summary>The file all three replicas read: PROXY protocol on the public listener, ports 0, one shared key ring.</summary>
    private string WriteConfig(string keys, Uri b1, Uri b2)
    {
        JsonObject Destinations() => new()
        {
            ["b1"] = new JsonObject { ["Address"] = b1.ToString() },
            ["b2"] = new JsonObject { ["Address"] = b2.ToString() },
        };
        var config = new JsonObject
        {
            ["Logging"] = new JsonObject
            {
                ["LogLevel"] = new JsonObject { ["Default"] = "Warning", ["Gateway.Listeners"] = "Information", ["Gateway.KeyRing"] = "Debug" },
            },
            ["Gateway"] = new JsonObject
            {
                ["Listeners"] = new JsonObject { ["ws"] = new JsonObject { ["Address"] = "127.0.0.1", ["Port"] = 0, ["ProxyProtocol"] = true } },
                ["Tls"] = new JsonObject(),
                ["Admin"] = new JsonObject { ["Address"] = "127.0.0.1", ["Port"] = 0 },
                ["DataProtection"] = new JsonObject { ["KeyDirectory"] = keys, ["ApplicationName"] = "chat-fleet" },
                ["Warmup"] = new JsonObject { ["Enabled"] = false },
                ["ShutdownTimeout"] = "00:00:02",
                ["Drain"] = new JsonObject { ["Delay"] = "00:00:00", ["Period"] = "00:00:00" },
            },
            ["ReverseProxy"] = new JsonObject
            {
                ["Routes"] = new JsonObject
                {
                    ["sticky"] = new JsonObject { ["ClusterId"] = "sticky", ["Match"] = new JsonObject { ["Path"] = "/sticky/{**rest}" } },
                    ["rooms"] = new JsonObject { ["ClusterId"] = "rooms", ["Match"] = new JsonObject { ["Path"] = "/rooms/{room}/{**rest}" } },
                },
                ["Clusters"] = new JsonObject
                {
                    // Least connections and the affinity cookie: the gateway's defaults.
                    ["sticky"] = new JsonObject { ["Destinations"] = Destinations() },
                    // No load bound: a room's members that one replica holds at once must not spill to the other backend.
                    ["rooms"] = new JsonObject
                    {
                        ["LoadBalancingPolicy"] = "ConsistentHash",
                        ["Metadata"] = new JsonObject { ["HashKey"] = "route:room", ["HashBalanceFactor"] = "0" },
                        ["Destinations"] = Destinations(),
                    },
                },
            },
        };
        var path = Path.Combine(_directory, "gateway.json");
        File.WriteAllText(path, config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return path;
    }

    /// <summary>One client connection: where it landed (replica, backend) and what it and the backend saw.</summary>
    private sealed record Landing(ProxiedClient Client, IPAddress From, int Replica, string Backend, string? ForwardedFor, string? AffinityCookie);

    /// <summary>The clients' side of the fleet: connections through HAProxy, each found on its replica and its backend.</summary>
    private sealed class Fleet(Uri frontend, IReadOnlyList<GatewayReplica> replicas, (string Name, ProbeBackend Probe)[] backends, HttpClient http)
    {
        public List<Landing> Landed { get; } = new();

        /// <summary>Opens a WebSocket through HAProxy from the next loopback address, with <paramref name="cookie"/> if given.</summary>
        public async Task<Landing> OpenAsync(string path, string? cookie = null)
        {
            var from = IPAddress.Parse($"127.0.0.{11 + Landed.Count}");
            var client = await ProxiedClient.ConnectAsync(frontend, [], from: from);
            try
            {
                Assert.Equal(101, await client.HandshakeAsync(path, cookie is null ? [] : [$"Cookie: {cookie}"]));
                Assert.Equal(path, await client.EchoAsync(path));
                var replica = await Retry.Eventually(async () =>
                {
                    foreach (var r in replicas)
                    {
                        if ((await r.ConnectionsAsync(http)).Any(c => c.Client == from.ToString()))
                        {
                            return r.Index;
                        }
                    }
                    throw new InvalidOperationException($"no replica lists a connection from {from}");
                }, Within);
                var (backend, request) = backends
                    .Select(b => (b.Name, Request: b.Probe.Seen.SingleOrDefault(r => r.Path == path)))
                    .Single(b => b.Request is not null);
                var landing = new Landing(client, from, replica, backend, request!.ForwardedFor, SetCookie(client.Response!));
                Landed.Add(landing);
                return landing;
            }
            catch
            {
                await client.DisposeAsync();
                throw;
            }
        }

        /// <summary>Closes the clients and waits until no replica lists a tunnel any more (least connections counts open ones).</summary>
        public async Task CloseAsync(IEnumerable<Landing> landings)
        {
            foreach (var landing in landings)
            {
                await landing.Client.DisposeAsync();
            }
            await Retry.Eventually(async () =>
            {
                foreach (var replica in replicas)
                {
                    Assert.Empty(await replica.ConnectionsAsync(http));
                }
            }, Within);
        }

        /// <summary>"gateway-affinity=VALUE" from the handshake's Set-Cookie, as a browser sends it back; null when none was set.</summary>
        private static string? SetCookie(string response) =>
            response.Split("\r\n")
                .Where(l => l.StartsWith("Set-Cookie:", StringComparison.OrdinalIgnoreCase))
                .Select(l => l["Set-Cookie:".Length..].Trim().Split(';')[0])
                .SingleOrDefault(c => c.StartsWith(AffinityCookie + "=", StringComparison.Ordinal));
    }
}
