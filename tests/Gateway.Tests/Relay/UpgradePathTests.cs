using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json.Nodes;
using Gateway.Tests.Handshake;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Relay;

/// <summary>
/// The way from a handshake to a tunnel, on real sockets (issue 22): the upgraded-connection limit holds on both
/// HTTP/1.1 paths before a backend is contacted, a backend's interim answers are skipped, a backend connection is
/// closed when the client cannot be upgraded, and an HTTP/2 client's goodbye never counts against the backend.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class UpgradePathTests
{
    private static JsonObject Config(Uri backend, bool lean, int? maxUpgraded = null)
    {
        var config = RelayConfig.Build(backend, new JsonObject());
        config["Gateway"]!["LeanUpgrades"] = lean;
        if (maxUpgraded is { } limit)
        {
            config["Kestrel"] = new JsonObject { ["Limits"] = new JsonObject { ["MaxConcurrentUpgradedConnections"] = limit } };
        }
        return config;
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task MaxConcurrentUpgradedConnections_holds_on_both_paths_before_any_backend_is_contacted(bool lean)
    {
        await using var backend = new RawBackend();
        await using var gateway = await GatewayServer.StartAsync(Config(backend.Address, lean, maxUpgraded: 2));
        var first = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/1");
        await using var second = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/2");

        for (var i = 0; i < 5; i++)
        {
            var refused = await RawConnection.SendAsync(gateway.Ws, RawRequest.Handshake("/raw/over"));
            Assert.Equal(503, refused.Status);
            Assert.Equal("5", refused.Header("Retry-After"));
        }
        Assert.Equal(2, Volatile.Read(ref backend.Handshakes));
        var metrics = await MetricsScrape.FetchAsync(gateway);
        Assert.Equal(5, metrics.Value("gateway_handshake_refused_total", ("reason", "upgraded_connection_limit")));

        // A tunnel that closes gives its room back.
        await first.SendAsync(RawFrames.CloseFrame(1000));
        await first.Ended.WaitAsync(TimeSpan.FromSeconds(10));
        await first.DisposeAsync();
        await Retry.Eventually(async () =>
        {
            await using var third = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/3");
        }, TimeSpan.FromSeconds(10));
    }

    [Theory]
    [InlineData(true, true)]
    [InlineData(true, false)]
    [InlineData(false, true)]
    public async Task Interim_answers_before_the_backends_101_are_skipped(bool lean, bool oneWrite)
    {
        await using var backend = new ScriptedBackend(key =>
        [
            "HTTP/1.1 100 Continue\r\n\r\n"u8.ToArray(),
            "HTTP/1.1 103 Early Hints\r\nLink: </app.css>; rel=preload\r\n\r\n"u8.ToArray(),
            [
                .. Encoding.ASCII.GetBytes($"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {RawFrames.AcceptFor(key)}\r\n\r\n"),
                .. RawFrames.Encode(RawFrame.Text, "hello from the backend"u8, mask: false),
            ],
        ], oneWrite);
        await using var gateway = await GatewayServer.StartAsync(Config(backend.Address, lean));

        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/interim");
        var frame = await client.ReceiveAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("hello from the backend", Encoding.UTF8.GetString(frame!.Payload));
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_backend_101_the_client_cannot_get_closes_the_backend_connection_and_answers_502(bool lean)
    {
        // 0xE9 in a header value: Kestrel's writer, and the lean path's after it, refuse to send it (not ASCII).
        await using var backend = new ScriptedBackend(key =>
        [
            [
                .. Encoding.ASCII.GetBytes($"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {RawFrames.AcceptFor(key)}\r\nX-Room: caf"),
                0xE9,
                .. "\r\n\r\n"u8.ToArray(),
            ],
        ]);
        await using var gateway = await GatewayServer.StartAsync(Config(backend.Address, lean));

        var statuses = new List<int>();
        for (var i = 0; i < 3; i++)
        {
            statuses.Add((await RawConnection.SendAsync(gateway.Ws, RawRequest.Handshake($"/raw/{i}"))).Status);
        }
        Assert.Equal(3, backend.Accepted);
        // Every backend connection is closed by the gateway, none left open for the client that never got its tunnel.
        await Task.WhenAll(backend.Closed).WaitAsync(TimeSpan.FromSeconds(10));
        // And the client hears that the backend's answer could not be passed on, not a 101 that leads nowhere.
        Assert.All(statuses, status => Assert.Equal(502, status));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task An_http2_client_that_goes_away_never_counts_against_the_backend(bool dropConnection)
    {
        using var certificates = new TestCertificates();
        var (certificate, key, _) = certificates.IssueServer("server", "localhost");
        await using var backend = new RawBackend();
        var config = Config(backend.Address, lean: true);
        config["Gateway"]!["Tls"] = new JsonObject { ["Certificates"] = new JsonArray(new JsonObject { ["Path"] = certificate, ["KeyPath"] = key }) };
        config["ReverseProxy"]!["Clusters"]!["raw"]!["HealthCheck"] = new JsonObject
        {
            ["Passive"] = new JsonObject { ["Enabled"] = true, ["Policy"] = "TransportFailureRate", ["ReactivationPeriod"] = "00:01:00" },
        };
        await using var gateway = await GatewayServer.StartAsync(config);
        var wss = new UriBuilder(gateway.Wss) { Host = "localhost" }.Uri;

        // Which loop sees a reset first is a race (1 to 8 tabs in 100 went the backend's way before the fix): enough tabs to lose it.
        const int Tabs = 100;
        for (var i = 0; i < Tabs; i++)
        {
            var handler = new SocketsHttpHandler();
            handler.SslOptions.RemoteCertificateValidationCallback = certificates.Validate;
            var client = new ClientWebSocket();
            client.Options.HttpVersion = HttpVersion.Version20;
            client.Options.HttpVersionPolicy = HttpVersionPolicy.RequestVersionExact;
            client.Options.KeepAliveInterval = TimeSpan.Zero;
            using (var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15)))
            {
                await client.ConnectAsync(new Uri(wss, $"raw/tab{i}"), new HttpMessageInvoker(handler), timeout.Token);
            }
            await WebSocketClient.SendTextAsync(client, "hello");
            Assert.Equal("hello", await WebSocketClient.ReceiveTextAsync(client));
            // A closed tab: the stream is reset (RST_STREAM), or the whole connection goes.
            if (dropConnection)
            {
                handler.Dispose();
            }
            client.Abort();
            client.Dispose();
            handler.Dispose();
        }

        var metrics = await Retry.Eventually(async () =>
        {
            var scrape = await MetricsScrape.FetchAsync(gateway);
            Assert.Equal(Tabs, scrape.Value("gateway_websocket_connections_closed_total"));
            return scrape;
        }, TimeSpan.FromSeconds(15));
        Assert.Equal(0, metrics.Value("gateway_websocket_connections_closed_total", ("closed_by", "backend")));
        Assert.Equal(Tabs, metrics.Value("gateway_websocket_connections_closed_total", ("closed_by", "client")));
        Assert.Equal(0, metrics.Value("gateway_proxy_errors_total"));
        Assert.Equal(1, metrics.Value("gateway_destination_health", ("destination", "d1")));
    }

    /// <summary>
    /// A backend that answers every handshake with the test's bytes (written one piece at a time, or all at once) and
    /// then only waits for the gateway to close the connection.
    /// </summary>
    private sealed class ScriptedBackend : IAsyncDisposable
    {
        private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
        private readonly CancellationTokenSource _stop = new();
        private readonly Func<string, byte[][]> _answer;
        private readonly bool _oneWrite;
        private readonly ConcurrentQueue<Task> _closed = new();
        private readonly ConcurrentBag<TcpClient> _clients = [];
        private readonly Task _accepting;
        private int _accepted;

        public ScriptedBackend(Func<string, byte[][]> answer, bool oneWrite = true)
        {
            _answer = answer;
            _oneWrite = oneWrite;
            _listener.Start();
            Address = new Uri($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}/");
            _accepting = AcceptAsync();
        }

        public Uri Address { get; }

        public int Accepted => Volatile.Read(ref _accepted);

        /// <summary>One task per connection, completed when the gateway closed it.</summary>
        public Task[] Closed => [.. _closed];

        private Task AcceptAsync() => AcceptLoop.RunAsync(_listener, _stop.Token, client =>
        {
            _clients.Add(client);
            Interlocked.Increment(ref _accepted);
            var closed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            _closed.Enqueue(closed.Task);
            _ = ServeAsync(client, closed);
        });

        private async Task ServeAsync(TcpClient client, TaskCompletionSource closed)
        {
            try
            {
                client.NoDelay = true;
                var stream = client.GetStream();
                var head = await RawFrames.ReadHeadAsync(stream, _stop.Token);
                var key = head.Split("\r\n").First(l => l.StartsWith("Sec-WebSocket-Key:", StringComparison.OrdinalIgnoreCase))[18..].Trim();
                var pieces = _answer(key);
                if (_oneWrite)
                {
                    await stream.WriteAsync(pieces.SelectMany(p => p).ToArray(), _stop.Token);
                }
                else
                {
                    foreach (var piece in pieces)
                    {
                        await stream.WriteAsync(piece, _stop.Token);
                        await Task.Delay(50, _stop.Token);
                    }
                }
                var sink = new byte[4096];
                while (await stream.ReadAsync(sink, _stop.Token) > 0)
                {
                }
                closed.TrySetResult();
            }
            catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
            {
                closed.TrySetResult();
            }
            catch (OperationCanceledException)
            {
            }
        }

        public async ValueTask DisposeAsync()
        {
            _stop.Cancel();
            _listener.Stop();
            await _accepting;
            foreach (var client in _clients)
            {
                client.Dispose();
            }
            _stop.Dispose();
        }
    }
}
