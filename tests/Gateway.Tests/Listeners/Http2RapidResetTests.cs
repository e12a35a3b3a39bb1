using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Net;
using System.Net.WebSockets;
using System.Text.Json.Nodes;
using Gateway.Handshake;
using Gateway.KeepAlive;
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
        var (sent, connections, goAways) = await RapidResetAsync(setup, streams: 4000);
        _output.WriteLine($"{sent} streams reset over {connections} connections ({goAways} ended by GOAWAY); backend requests {setup.Backend.Requests}");

        await setup.AssertNothingHeldAsync(_output);
        await setup.AssertServedAsync(RapidResetGateway.PolicyLimit);
    }

    [Fact]
    public async Task With_MaxConcurrentConnections_set_a_new_client_is_still_served_after_rapid_resets()
    {
        await using var setup = await RapidResetGateway.StartAsync(config =>
            config["Kestrel"] = new JsonObject { ["Limits"] = new JsonObject { ["MaxConcurrentConnections"] = 8 } });
        var (sent, connections, goAways) = await RapidResetAsync(setup, streams: int.Parse(Environment.GetEnvironmentVariable("RR_STREAMS") ?? "4000"));
        _output.WriteLine($"MaxConcurrentConnections 8: {sent} streams reset over {connections} connections ({goAways} ended by GOAWAY)");

        await setup.AssertNothingHeldAsync(_output);
        await setup.AssertServedAsync(1);
    }

    /// <summary>
    /// Four attackers at once, each opening and resetting streams on one connection, and on a new one whenever the
    /// gateway closes it, until <paramref name="streams"/> resets in all have been sent (or 20 s have passed).
    /// </summary>
    private static async Task<(int Sent, int Connections, int GoAways)> RapidResetAsync(RapidResetGateway setup, int streams)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(int.Parse(Environment.GetEnvironmentVariable("RR_SECONDS") ?? "10")));
        int sent = 0, connections = 0, goAways = 0;
        await Parallel.ForAsync(0, 4, async (_, _) =>
        {
            while (Volatile.Read(ref sent) < streams && !timeout.IsCancellationRequested)
            {
                Interlocked.Increment(ref connections);
                RawHttp2Client client;
                try
                {
                    client = await RawHttp2Client.ConnectAsync(setup.Gateway.Https, setup.Certificates.Validate, timeout.Token);
                }
                catch (Exception ex) when (ex is IOException or System.Security.Authentication.AuthenticationException or System.Net.Sockets.SocketException)
                {
                    continue; // refused by Kestrel's connection limit: the attacker tries again
                }
                await using (client)
                {
                    try
                    {
                        while (!client.Closed.IsCompleted && Interlocked.Increment(ref sent) <= streams)
                        {
                            await client.OpenWebSocketAsync($"localhost:{setup.Gateway.Https.Port}", "/ws/echo", Origin, resetAtOnce: true, timeout.Token);
                        }
                    }
                    catch (IOException)
                    {
                        // the gateway closed the connection mid-write
                    }
                    if (client.GoAwayError is not null)
                    {
                        Interlocked.Increment(ref goAways);
                    }
                }
            }
        });
        return (Math.Min(sent, streams), connections, goAways);
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
            Assert.Equal(RapidResetGateway.PolicyLimit, setup.Sweeper.OpenTunnels);
            foreach (var id in ids)
            {
                await client.ResetAsync(id, timeout.Token);
            }
            await setup.AssertNothingHeldAsync(_output);
        }
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

        /// <summary>Within a few seconds of the last reset: no tunnel, no descriptor reservation, no Kestrel connection.</summary>
        public async Task AssertNothingHeldAsync(ITestOutputHelper output)
        {
            try
            {
                await Retry.Eventually(() =>
                {
                    Assert.Equal(0, Sweeper.OpenTunnels);
                    Assert.Equal(0, Descriptors.Open);
                    Assert.Equal(0, OpenTunnelsGauge);
                    Assert.Equal(0, KestrelConnections);
                    return Task.CompletedTask;
                }, TimeSpan.FromSeconds(10));
            }
            finally
            {
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
