using System.Diagnostics;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json.Nodes;
using Gateway.Tests.Infrastructure;
using Gateway.Tests.Relay;

namespace Gateway.Tests.KeepAlive;

/// <remarks>On the lean HTTP/1.1 path here, on Kestrel's in <see cref="KeepAliveTestsOnKestrelsPath"/>.</remarks>
[Collection(SerialCollection.Name)]
public class KeepAliveTests
{
    /// <summary>Gateway:LeanUpgrades for every gateway these tests start.</summary>
    protected virtual bool Lean => true;

    [Fact]
    public async Task An_idle_tunnel_with_keepalive_outlives_the_activity_timeout_and_the_backend_sees_no_pongs()
    {
        await using var backend = new RawBackend();
        await using var gateway = await GatewayServer.StartAsync(RelayConfig.Build(
            backend.Address, RelayConfig.KeepAlive("00:00:00.200", "00:00:02"), activityTimeout: "00:00:01.500", lean: Lean));
        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/idle");

        // Four times YARP's activity timeout without a byte of application traffic.
        var unexpected = await client.IdleAsync(TimeSpan.FromSeconds(6));
        Assert.Empty(unexpected);
        Assert.True(client.PingsSeen >= 5, $"the client saw {client.PingsSeen} pings");

        await client.SendAsync(RawFrames.Encode(RawFrame.Text, "still here"u8));
        var echo = await client.ReceiveAsync();
        Assert.NotNull(echo);
        Assert.Equal("still here", Encoding.UTF8.GetString(echo.Payload));

        // The client answered every ping, yet none of its pongs reached the backend; the backend was pinged too.
        Assert.Equal(0, backend.Count(RawFrame.Pong));
        Assert.True(backend.Count(RawFrame.Ping) >= 5, $"the backend saw {backend.Count(RawFrame.Ping)} pings");
        Assert.Null(client.ReadError);
    }

    [Fact]
    public async Task Idle_tunnels_answering_pings_hold_no_relay_buffer()
    {
        // YARP rents a 64 KiB buffer whenever its zero-byte read on the client side completes and keeps it until a
        // read returns data. A swallowed pong must therefore never end that wait, or every idle tunnel would hold
        // 64 KiB from its first pong on. Counted with the runtime's ArrayPool events: 64 KiB buffers rented during
        // an idle window and not returned by its end.
        await using var backend = new RawBackend();
        await using var gateway = await GatewayServer.StartAsync(RelayConfig.Build(
            backend.Address, RelayConfig.KeepAlive("00:00:00.100", "00:00:02", backend: false), lean: Lean));
        var clients = new List<RawWebSocketClient>();
        try
        {
            for (var i = 0; i < 10; i++)
            {
                var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, $"/raw/idle{i}");
                clients.Add(client);
                await client.SendAsync(RawFrames.Encode(RawFrame.Text, "warm"u8));
                Assert.NotNull(await client.ReceiveAsync());
            }

            using var rentals = new LargeBufferRentals(65536);
            var idle = await Task.WhenAll(clients.Select(c => c.IdleAsync(TimeSpan.FromSeconds(1.5))));
            var held = rentals.Outstanding;

            Assert.All(idle, Assert.Empty);
            Assert.All(clients, c => Assert.True(c.PingsSeen >= 5, $"a client saw {c.PingsSeen} pings"));
            Assert.Equal(0, held);

            // Still a working tunnel, and what arrives during a pong wait is relayed whole.
            foreach (var client in clients)
            {
                await client.SendAsync(RawFrames.Encode(RawFrame.Text, "after the pings"u8), chunk: 3);
                var echo = await client.ReceiveAsync();
                Assert.NotNull(echo);
                Assert.Equal("after the pings", Encoding.UTF8.GetString(echo.Payload));
            }
            Assert.Equal(0, backend.Count(RawFrame.Pong));
        }
        finally
        {
            foreach (var client in clients)
            {
                await client.DisposeAsync();
            }
        }
    }

    /// <summary>Buffers of one size rented from the shared ArrayPool while it listens and not yet returned.</summary>
    private sealed class LargeBufferRentals(int size) : System.Diagnostics.Tracing.EventListener
    {
        private readonly HashSet<int> _outstanding = [];
        private bool _listening;

        public int Outstanding
        {
            get
            {
                lock (_outstanding)
                {
                    _listening = false;
                    return _outstanding.Count;
                }
            }
        }

        protected override void OnEventSourceCreated(System.Diagnostics.Tracing.EventSource source)
        {
            if (source.Name == "System.Buffers.ArrayPoolEventSource")
            {
                lock (_outstanding)
                {
                    _listening = true;
                }
                EnableEvents(source, System.Diagnostics.Tracing.EventLevel.Verbose);
            }
        }

        protected override void OnEventWritten(System.Diagnostics.Tracing.EventWrittenEventArgs e)
        {
            if (e.Payload is not { Count: >= 2 } payload || payload[1] is not int bufferSize || bufferSize != size || payload[0] is not int id)
            {
                return;
            }
            lock (_outstanding)
            {
                if (!_listening)
                {
                    return;
                }
                if (e.EventName == "BufferRented")
                {
                    _outstanding.Add(id);
                }
                else if (e.EventName == "BufferReturned")
                {
                    _outstanding.Remove(id);
                }
            }
        }
    }

    [Fact]
    public async Task Without_keepalive_the_activity_timeout_still_closes_an_idle_tunnel_with_1001_on_both_sides()
    {
        await using var backend = new RawBackend();
        await using var gateway = await GatewayServer.StartAsync(RelayConfig.Build(
            backend.Address, RelayConfig.KeepAlive("00:00:00", "00:00:01"), activityTimeout: "00:00:01", lean: Lean));
        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/idle");

        // YARP's own activity timeout cut both connections without a Close; the relay says why.
        var close = await client.ReceiveAsync(TimeSpan.FromSeconds(5));
        Assert.NotNull(close);
        Assert.Equal(RawFrame.Close, close!.Opcode);
        Assert.Equal(1001, close.CloseCode);
        Assert.Equal("idle timeout", close.CloseReason);
        var toBackend = await backend.CloseReceived.Task.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(1001, toBackend.CloseCode);
        var ended = await Task.WhenAny(client.Ended, Task.Delay(TimeSpan.FromSeconds(10)));
        Assert.Same(client.Ended, ended);
        Assert.Equal(0, client.PingsSeen);
    }

    [Fact]
    public async Task Keepalive_holds_a_wss_http2_tunnel_open_past_the_activity_timeout()
    {
        await using var backend = await Backend.StartAsync("h2");
        using var certificates = new TestCertificates();
        var (pem, key, _) = certificates.IssueServer("server", "localhost");
        // Pings every 150-200 ms against a 2 s activity timeout: ten chances to keep it alive, so a loaded CI machine
        // that delays a sweep or a pong by a second does not make the test fail (1 s failed there now and then, before
        // and after the relay split).
        var config = RelayConfig.Build(backend.Address, RelayConfig.KeepAlive("00:00:00.200", "00:00:02"), activityTimeout: "00:00:02", path: "/echo", lean: Lean);
        config["Gateway"]!["Tls"]!["Certificates"] = new JsonArray(new JsonObject { ["Path"] = pem, ["KeyPath"] = key });
        await using var gateway = await GatewayServer.StartAsync(config);

        foreach (var transport in new[] { Transport.WssHttp2, Transport.Ws })
        {
            using var socket = await WebSocketClient.ConnectAsync(gateway, transport, "/echo", certificates);
            // ClientWebSocket answers pings itself, as browsers do.
            var receive = WebSocketClient.ReceiveAsync(socket);
            await Task.Delay(TimeSpan.FromSeconds(5));
            Assert.False(receive.IsCompleted, "the tunnel closed while idle");
            await WebSocketClient.SendTextAsync(socket, "after a long silence");
            var (type, payload) = await receive;
            Assert.Equal(WebSocketMessageType.Text, type);
            Assert.Equal("after a long silence", Encoding.UTF8.GetString(payload));
            Assert.Equal(WebSocketCloseStatus.NormalClosure, await WebSocketClient.CloseAsync(socket));
        }
    }
}

/// <summary>The same keepalive tests with HTTP/1.1 upgrades on Kestrel's own path (Gateway:LeanUpgrades false).</summary>
[Collection(SerialCollection.Name)]
public sealed class KeepAliveTestsOnKestrelsPath : KeepAliveTests
{
    protected override bool Lean => false;
}
