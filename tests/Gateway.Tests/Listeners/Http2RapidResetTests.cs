using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Authentication;
using System.Text.Json.Nodes;
using Gateway.Handshake;
using Gateway.Relay;
using Gateway.Listeners;
using Gateway.Tests.Handshake;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace Gateway.Tests.Listeners;

/// <summary>
/// HTTP/2 rapid reset (CVE-2023-44487) against the wss listener: extended-CONNECT WebSocket streams (RFC 8441) reset
/// right after their HEADERS, thousands of times, and tunnels reset after the backend accepted. Whatever the gateway
/// takes for a stream (the policy's permits, the descriptor budget, a keepalive slot, the open-tunnels gauge) must be
/// back when the streams are gone, and new clients served.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class Http2RapidResetTests
{
    private const string Origin = "https://chat.example.com";
    private readonly ITestOutputHelper _output;

    public Http2RapidResetTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public async Task Thousands_of_streams_reset_after_headers_leave_nothing_held_and_new_clients_are_served()
    {
        await using var setup = await RapidResetGateway.StartAsync();
        var result = await AttackAsync(setup, new Attack(Streams: 4000));
        _output.WriteLine($"{result}; backend requests {setup.Backend.Requests}");
        Assert.Equal(4000, result.Sent);

        await setup.AssertNothingHeldAsync(_output, kestrelConnections: null);
        await setup.AssertServedAsync(RapidResetGateway.PolicyLimit);
    }

    [Fact]
    public async Task With_MaxConcurrentConnections_set_a_new_client_is_served_after_rapid_resets_over_many_connections()
    {
        await using var setup = await RapidResetGateway.StartAsync(config => config["Kestrel"] = Limits(maxConnections: 4, keepAlive: "00:00:02"));
        var result = await AttackAsync(setup, new Attack(Streams: 20_000, PerConnection: 500));
        _output.WriteLine($"MaxConcurrentConnections 4: {result}; backend requests {setup.Backend.Requests}");
        Assert.Equal(20_000, result.Sent);
        Assert.True(result.Connections >= 40, $"{result.Connections} connections");

        // The gateway's own counts return to 0; Kestrel's is reported, not asserted: now and then it keeps one flooded
        // connection past the KeepAliveTimeout (seen 3 times in ~12 runs on a loaded machine), which is why the warning
        // exists. What must hold is that the gateway is not stuck: a new client is served under the limit.
        await setup.AssertNothingHeldAsync(_output, kestrelConnections: null);
        await setup.AssertServedAsync(1);
    }

    /// <summary>
    /// The attacker paced by PINGs, so Kestrel reads every stream, and then holding its connections open: Kestrel's
    /// KeepAliveTimeout (2 s here) closes each, which is what bounds them under MaxConcurrentConnections.
    /// </summary>
    [Fact]
    public async Task Connections_held_open_after_paced_resets_are_closed_by_the_KeepAliveTimeout()
    {
        await using var setup = await RapidResetGateway.StartAsync(config => config["Kestrel"] = Limits(maxConnections: 4, keepAlive: "00:00:02"));
        var result = await AttackAsync(setup, new Attack(Streams: 8000, PerConnection: 2000, PingEvery: 20, Hold: TimeSpan.FromSeconds(10)));
        _output.WriteLine($"MaxConcurrentConnections 4, KeepAliveTimeout 2 s: {result}; backend requests {setup.Backend.Requests}");
        Assert.Equal(8000, result.Sent);
        Assert.Equal(result.Connections - result.Refused, result.ClosedByServer);
        Assert.True(result.LongestHold < TimeSpan.FromSeconds(8), $"held {result.LongestHold}");

        await setup.AssertNothingHeldAsync(_output);
        await setup.AssertServedAsync(1);
    }

    private static JsonObject Limits(int maxConnections, string? keepAlive = null)
    {
        var limits = new JsonObject { ["MaxConcurrentConnections"] = maxConnections };
        if (keepAlive is not null)
        {
            limits["KeepAliveTimeout"] = keepAlive;
        }
        return new JsonObject { ["Limits"] = limits };
    }

    /// <param name="Streams">Resets to send in all.</param>
    /// <param name="PerConnection">Streams per connection before the attacker moves to a new one.</param>
    /// <param name="PingEvery">Every this many streams, a PING and its ACK awaited (0: no pacing).</param>
    /// <param name="Hold">How long the attacker keeps each connection open afterwards, waiting for the server to close it.</param>
    private sealed record Attack(int Streams, int PerConnection = int.MaxValue, int PingEvery = 0, TimeSpan Hold = default);

    private sealed record AttackResult(int Sent, int Connections, int Refused, int GoAways, int ClosedByServer, TimeSpan LongestHold);

    /// <summary>
    /// Four attackers at once, each opening extended-CONNECT streams and resetting them in the same write, moving to a new
    /// connection when the gateway closes one (or after <see cref="Attack.PerConnection"/>), until the attack's resets
    /// are all sent (or 45 s have passed: then the attack stops where it is, and the caller's count of resets sent says so).
    /// </summary>
    private static async Task<AttackResult> AttackAsync(RapidResetGateway setup, Attack attack)
    {
        // Generous: the attack takes a few seconds alone, but CI runs it on 2 busy cores beside the rest of the suite
        // (once a 20-s deadline ended an attacker's TLS connect there).
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(45));
        var authority = $"localhost:{setup.Gateway.Https.Port}";
        int sent = 0, connections = 0, refused = 0, goAways = 0, closedByServer = 0;
        long longestHold = 0;
        await Parallel.ForAsync(0, 4, new ParallelOptions { MaxDegreeOfParallelism = 4 }, async (_, _) =>
        {
            while (Volatile.Read(ref sent) < attack.Streams && !timeout.IsCancellationRequested)
            {
                Interlocked.Increment(ref connections);
                RawHttp2Client client;
                try
                {
                    client = await RawHttp2Client.ConnectAsync(setup.Gateway.Https, setup.Certificates.Validate, timeout.Token);
                }
                catch (Exception ex) when (ex is IOException or AuthenticationException or SocketException)
                {
                    Interlocked.Increment(ref refused); // Kestrel's connection limit: the attacker tries again
                    continue;
                }
                catch (OperationCanceledException) when (timeout.IsCancellationRequested)
                {
                    break; // the deadline: the resets sent so far are the result
                }
                await using (client)
                {
                    try
                    {
                        for (var n = 1; n <= attack.PerConnection && !client.Closed.IsCompleted; n++)
                        {
                            if (Interlocked.Increment(ref sent) > attack.Streams)
                            {
                                Interlocked.Decrement(ref sent);
                                break;
                            }
                            await client.OpenWebSocketAsync(authority, "/ws/echo", Origin, resetAtOnce: true, timeout.Token);
                            if (attack.PingEvery > 0 && n % attack.PingEvery == 0)
                            {
                                await client.PingAsync(timeout.Token);
                            }
                        }
                    }
                    catch (IOException)
                    {
                        // the gateway closed the connection mid-write
                    }
                    catch (OperationCanceledException) when (timeout.IsCancellationRequested)
                    {
                        // the deadline: the loop ends below
                    }
                    if (attack.Hold > TimeSpan.Zero)
                    {
                        var held = Stopwatch.StartNew();
                        await Task.WhenAny(client.Closed, Task.Delay(attack.Hold, timeout.Token));
                        InterlockedMax(ref longestHold, held.Elapsed.Ticks);
                    }
                    if (client.Closed.IsCompleted)
                    {
                        Interlocked.Increment(ref closedByServer);
                    }
                    if (client.GoAwayError is not null)
                    {
                        Interlocked.Increment(ref goAways);
                    }
                }
            }
        });
        return new AttackResult(sent, connections, refused, goAways, closedByServer, TimeSpan.FromTicks(longestHold));
    }

    private static void InterlockedMax(ref long target, long value)
    {
        var current = Volatile.Read(ref target);
        while (value > current && Interlocked.CompareExchange(ref target, value, current) is var seen && seen != current)
        {
            current = seen;
        }
    }

    [Fact]
    public async Task Tunnels_reset_after_the_backend_accepted_give_back_what_they_held()
    {
        await using var setup = await RapidResetGateway.StartAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var client = await RawHttp2Client.ConnectAsync(setup.Gateway.Https, setup.Certificates.Validate, timeout.Token);
        var authority = $"localhost:{setup.Gateway.Https.Port}";
        // In rounds of the policy's limit: each round fills every permit with open tunnels, then resets them all.
        for (var round = 0; round < 10; round++)
        {
            var ids = new List<int>();
            for (var i = 0; i < RapidResetGateway.PolicyLimit; i++)
            {
                ids.Add(await client.OpenWebSocketAsync(authority, "/ws/echo", Origin, resetAtOnce: false, timeout.Token));
            }
            foreach (var id in ids)
            {
                Assert.Equal(200, await client.StatusAsync(id).WaitAsync(timeout.Token));
            }
            // The 200 is on the wire before the tunnel joins the sweep (a moment later, on the gateway's side).
            await Retry.Eventually(() => Assert.Equal(RapidResetGateway.PolicyLimit, setup.Sweeper.OpenTunnels), TimeSpan.FromSeconds(5));
            foreach (var id in ids)
            {
                await client.ResetAsync(id, timeout.Token);
            }
            await setup.AssertNothingHeldAsync(_output, kestrelConnections: 1);
        }
        await setup.AssertServedAsync(RapidResetGateway.PolicyLimit);
    }

    [Fact]
    public async Task Streams_reset_while_their_handshake_is_in_flight_give_back_what_they_held()
    {
        await using var setup = await RapidResetGateway.StartAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        await using var client = await RawHttp2Client.ConnectAsync(setup.Gateway.Https, setup.Certificates.Validate, timeout.Token);
        var authority = $"localhost:{setup.Gateway.Https.Port}";
        // Rounds of the policy's limit, each reset without waiting for an answer: the resets land while the gate holds
        // the permits, while YARP connects to the backend, or once the tunnel is open.
        for (var round = 0; round < 50 && !client.Closed.IsCompleted; round++)
        {
            var ids = new List<int>();
            for (var i = 0; i < RapidResetGateway.PolicyLimit; i++)
            {
                ids.Add(await client.OpenWebSocketAsync(authority, "/ws/echo", Origin, resetAtOnce: false, timeout.Token));
            }
            if (round % 2 == 0)
            {
                // Kestrel has read the HEADERS once it answers the PING: the handshakes have started.
                await client.PingAsync(timeout.Token);
                await Task.Delay(round % 10, timeout.Token);
            }
            foreach (var id in ids)
            {
                await client.ResetAsync(id, timeout.Token);
            }
        }
        Assert.False(client.Closed.IsCompleted);
        _output.WriteLine($"1000 streams; the backend saw {setup.Backend.Requests} handshakes");
        Assert.InRange(setup.Backend.Requests, 1, 1000);

        await setup.AssertNothingHeldAsync(_output, kestrelConnections: 1);
        await setup.AssertServedAsync(RapidResetGateway.PolicyLimit);
    }

    /// <summary>A gateway with a strict policy whose total and per-client limits are small, so a leaked permit shows.</summary>
    private sealed class RapidResetGateway : IAsyncDisposable
    {
        public const int PolicyLimit = 20;

        private readonly MeterListener _listener = new();
        private readonly ConcurrentDictionary<string, long> _gauges = new();

        private RapidResetGateway(TestCertificates certificates, ProbeBackend backend, GatewayServer gateway)
        {
            Certificates = certificates;
            Backend = backend;
            Gateway = gateway;
        }

        public TestCertificates Certificates { get; }

        public ProbeBackend Backend { get; }

        public GatewayServer Gateway { get; }

        public KeepAliveSweeper Sweeper => Gateway.Services.GetRequiredService<KeepAliveSweeper>();

        public FileDescriptorLimit Descriptors => Gateway.Services.GetRequiredService<FileDescriptorLimit>();

        public long KestrelConnections => _gauges.GetValueOrDefault("kestrel.active_connections");

        public long OpenTunnelsGauge => _gauges.GetValueOrDefault("gateway.websocket.connections.active");

        public static async Task<RapidResetGateway> StartAsync(Action<JsonObject>? configure = null)
        {
            var certificates = new TestCertificates();
            var backend = await ProbeBackend.StartAsync();
            var (certificate, key, _) = certificates.IssueServer("server", "localhost");
            var policies = new JsonObject
            {
                ["strict"] = new JsonObject
                {
                    ["Handshake"] = new JsonObject { ["AllowedOrigins"] = HandshakeGateway.Strings(Origin) },
                    ["Limits"] = new JsonObject { ["MaxConnections"] = PolicyLimit, ["MaxConnectionsPerClient"] = PolicyLimit },
                },
            };
            var config = HandshakeGateway.Config(HandshakeGateway.Proxy(backend, ("ws", "/ws", "strict")), policies,
                [new JsonObject { ["Path"] = certificate, ["KeyPath"] = key }]);
            configure?.Invoke(config);
            var gateway = await GatewayServer.StartAsync(config);
            var setup = new RapidResetGateway(certificates, backend, gateway);
            setup.Listen();
            return setup;
        }

        private void Listen()
        {
            var factory = Gateway.Services.GetRequiredService<IMeterFactory>();
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (ReferenceEquals(instrument.Meter.Scope, factory)
                    && instrument.Name is "kestrel.active_connections" or "gateway.websocket.connections.active")
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<long>((instrument, value, _, _) => _gauges.AddOrUpdate(instrument.Name, value, (_, sum) => sum + value));
            _listener.Start();
        }

        /// <summary>
        /// Within seconds of the last reset: no tunnel, no descriptor reservation, and no Kestrel connection but
        /// the <paramref name="kestrelConnections"/> the test itself still holds open.
        /// </summary>
        public async Task AssertNothingHeldAsync(ITestOutputHelper output, int? kestrelConnections = 0)
        {
            try
            {
                await Retry.Eventually(() =>
                {
                    Assert.Equal(0, Sweeper.OpenTunnels);
                    Assert.Equal(0, Descriptors.Open);
                    Assert.Equal(0, OpenTunnelsGauge);
                    if (kestrelConnections is { } expected)
                    {
                        Assert.Equal(expected, KestrelConnections);
                    }
                    return Task.CompletedTask;
                }, TimeSpan.FromSeconds(20)); // generous: the machine may be loaded, and Kestrel ends aborted connections in the background
            }
            finally
            {
                if (kestrelConnections is null)
                {
                    // Not asserted: Kestrel's own, which may keep a connection the client has left (reported, for the record).
                    for (var waited = 0; waited < 50 && KestrelConnections > 0; waited++)
                    {
                        await Task.Delay(100);
                    }
                }
                output.WriteLine($"keepalive slots {Sweeper.OpenTunnels}, descriptor reservations {Descriptors.Open}, open-tunnels gauge {OpenTunnelsGauge}, Kestrel connections {KestrelConnections}");
            }
        }

        /// <summary><paramref name="count"/> WebSockets over HTTP/2 at once, each on a connection of its own (the policy's limit: every permit free again).</summary>
        public async Task AssertServedAsync(int count)
        {
            var sockets = new List<ClientWebSocket>();
            try
            {
                for (var i = 0; i < count; i++)
                {
                    var socket = new ClientWebSocket();
                    sockets.Add(socket);
                    socket.Options.HttpVersion = HttpVersion.Version20;
                    socket.Options.HttpVersionPolicy = HttpVersionPolicy.RequestVersionExact;
                    socket.Options.SetRequestHeader("Origin", Origin);
                    var handler = new SocketsHttpHandler();
                    handler.SslOptions.RemoteCertificateValidationCallback = Certificates.Validate;
                    using var timeout = new CancellationTokenSource(WebSocketClient.Timeout);
                    await socket.ConnectAsync(new Uri(Gateway.Wss, "ws/echo"), new HttpMessageInvoker(handler), timeout.Token);
                }
                await WebSocketClient.SendTextAsync(sockets[^1], "still served");
                Assert.Equal("still served", await WebSocketClient.ReceiveTextAsync(sockets[^1]));
            }
            finally
            {
                foreach (var socket in sockets)
                {
                    socket.Abort();
                    socket.Dispose();
                }
            }
        }

        public async ValueTask DisposeAsync()
        {
            _listener.Dispose();
            await Gateway.DisposeAsync();
            await Backend.DisposeAsync();
            Certificates.Dispose();
        }
    }
}
