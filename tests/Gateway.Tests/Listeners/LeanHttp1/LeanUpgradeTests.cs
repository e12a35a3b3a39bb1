using System.Collections.Concurrent;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Gateway.Tests.Handshake;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Transforms;
using Yarp.ReverseProxy.Transforms.Builder;

namespace Gateway.Tests.Listeners.LeanHttp1;

/// <summary>
/// HTTP/1.1 connections whose first request is a plain WebSocket upgrade run on the lean path; everything else stays
/// Kestrel's. What a client sees must not depend on which path served it.
/// </summary>
public sealed class LeanUpgradeTests : IAsyncLifetime
{
    private readonly TestCertificates _certificates = new();
    private readonly ContextRecorder _recorder = new();
    private readonly CapturingLoggerProvider _leanLogs = new();
    private Backend _backend = null!;
    private GatewayServer _lean = null!;
    private GatewayServer _kestrel = null!;

    public async Task InitializeAsync()
    {
        _backend = await Backend.StartAsync("echo-1");
        var (certificate, key, _) = _certificates.IssueServer("server", "localhost");
        var proxy = GatewayServer.Proxy([("echo", "/echo", "echo")], [("echo", [_backend])]);
        var config = GatewayServer.Config(proxy, [new JsonObject { ["Path"] = certificate, ["KeyPath"] = key }]);
        // The time Kestrel gives a new connection to start its first request.
        config["Kestrel"] = new JsonObject { ["Limits"] = new JsonObject { ["KeepAliveTimeout"] = "00:00:02" } };
        config["Logging"]!["LogLevel"]!["Gateway.Listeners.LeanHttp1"] = "Debug";
        _lean = await GatewayServer.StartAsync(config, services =>
        {
            services.AddSingleton<ITransformProvider>(_recorder);
            services.AddSingleton<ILoggerProvider>(_leanLogs);
        });
        var off = (JsonObject)config.DeepClone();
        off["Gateway"]!["LeanUpgrades"] = false;
        _kestrel = await GatewayServer.StartAsync(off, services => services.AddSingleton<ITransformProvider>(_recorder));
    }

    public async Task DisposeAsync()
    {
        await _lean.DisposeAsync();
        await _kestrel.DisposeAsync();
        await _backend.DisposeAsync();
        _certificates.Dispose();
    }

    [Theory]
    [InlineData(Transport.Ws, true)]
    [InlineData(Transport.WssHttp11, true)]
    [InlineData(Transport.WssHttp2, false)]
    public async Task Http11_upgrades_run_on_the_lean_path_and_relay_as_before(Transport transport, bool lean)
    {
        _recorder.Clear();
        using var socket = await WebSocketClient.ConnectAsync(_lean, transport, "/echo", _certificates);
        await WebSocketClient.SendTextAsync(socket, "hello");
        Assert.Equal("hello", await WebSocketClient.ReceiveTextAsync(socket));
        Assert.Equal(lean, _recorder.Take().EndsWith("LeanExchange", StringComparison.Ordinal));
        Assert.Equal(System.Net.WebSockets.WebSocketCloseStatus.NormalClosure, await WebSocketClient.CloseAsync(socket));
    }

    [Fact]
    public async Task Turned_off_every_upgrade_is_Kestrels()
    {
        _recorder.Clear();
        using var socket = await WebSocketClient.ConnectAsync(_kestrel, Transport.Ws, "/echo", _certificates);
        await WebSocketClient.SendTextAsync(socket, "hello");
        Assert.Equal("hello", await WebSocketClient.ReceiveTextAsync(socket));
        Assert.DoesNotContain("LeanExchange", _recorder.Take());
    }

    /// <summary>Why, the head, and whether the lean path takes it (the rest is Kestrel's).</summary>
    public static TheoryData<string, string, bool> Handshakes => new()
    {
        { "accepted", Head("/echo?room=1"), true },
        { "accepted, with a subpath", Head("/echo/x"), true },
        { "no key", Head("/echo?room=1").Replace("Sec-WebSocket-Key", "X-Not-The-Key"), true },
        { "a short key", Head("/echo?room=1", key: "c2hvcnQ="), true },
        { "version 8", Head("/echo?room=1").Replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8"), true },
        { "no route", Head("/nowhere"), true },
        { "a POST", Head("/echo?room=1").Replace("GET ", "POST ").Replace("\r\n\r\n", "\r\nContent-Length: 0\r\n\r\n"), false },
        { "percent-encoded path", Head("/ech%6F"), false },
        { "header without a colon", Head("/echo?room=1").Replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version 13"), false },
        { "two Hosts", Head("/echo?room=1").Replace("\r\n\r\n", "\r\nHost: other\r\n\r\n"), false },
        { "no Host", Head("/echo?room=1").Replace("Host: localhost\r\n", ""), false },
        { "HTAB after a comma in Connection", Head("/echo?room=1").Replace("Connection: Upgrade", "Connection: keep-alive,\tUpgrade"), false },
        { "HTAB before a comma in Connection", Head("/echo?room=1").Replace("Connection: Upgrade", "Connection: Upgrade\t,keep-alive"), false },
        { "HTAB around Connection's one value", Head("/echo?room=1").Replace("Connection: Upgrade", "Connection:\tUpgrade\t"), true },
        { "SP around commas in Connection", Head("/echo?room=1").Replace("Connection: Upgrade", "Connection: keep-alive ,  Upgrade "), true },
    };

    [Theory]
    [MemberData(nameof(Handshakes))]
    public async Task Every_handshake_gets_the_same_answer_on_either_path(string why, string head, bool leanTakes)
    {
        var (lean, took) = await StatusAsync(_lean, head, _leanLogs);
        var (kestrel, _) = await StatusAsync(_kestrel, head, logs: null);
        Assert.True(lean == kestrel, $"{why}: the lean path answered '{lean}', Kestrel '{kestrel}'");
        // Which path answered on the lean gateway: its event 172 names the client's port.
        Assert.True(took == leanTakes, $"{why}: {(took ? "the lean path" : "Kestrel")} answered on the lean gateway");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_refusal_of_a_request_that_says_Connection_close_ends_the_connection_as_Kestrel_does(bool tls)
    {
        // A refused upgrade (version 8) that says close, and a valid upgrade pipelined in the same write.
        var refused = Head("/echo?room=1").Replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8")
            .Replace("Connection: Upgrade", "Connection: Upgrade, close");
        var bytes = Encoding.ASCII.GetBytes(refused + Head("/echo?room=2"));

        var kestrel = await AnswersAsync(_kestrel, tls, bytes);
        var lean = await AnswersAsync(_lean, tls, bytes);

        Assert.Equal(["HTTP/1.1 426 Upgrade Required", "(closed)"], kestrel);
        Assert.Equal(kestrel, lean);
    }

    /// <summary>The status line of every answer on one connection, then "(closed)" at its end (or "(open)" or a 101's end).</summary>
    private async Task<List<string>> AnswersAsync(GatewayServer gateway, bool tls, byte[] bytes)
    {
        using var tcp = new TcpClient { NoDelay = true };
        var address = tls ? gateway.Wss : gateway.Ws;
        await tcp.ConnectAsync(address.Host, address.Port);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        Stream stream = tcp.GetStream();
        if (tls)
        {
            var ssl = new System.Net.Security.SslStream(stream, leaveInnerStreamOpen: false, _certificates.Validate);
            await ssl.AuthenticateAsClientAsync(new System.Net.Security.SslClientAuthenticationOptions
            {
                TargetHost = "localhost",
                ApplicationProtocols = [System.Net.Security.SslApplicationProtocol.Http11],
            }, timeout.Token);
            stream = ssl;
        }
        await using var _ = stream;
        await stream.WriteAsync(bytes, timeout.Token);
        var answers = new List<string>();
        while (true)
        {
            string head;
            try
            {
                head = await RawFrames.ReadHeadAsync(stream, timeout.Token);
            }
            catch (Exception ex) when (ex is EndOfStreamException or IOException)
            {
                answers.Add("(closed)");
                return answers;
            }
            catch (OperationCanceledException)
            {
                answers.Add("(open)");
                return answers;
            }
            answers.Add(head[..head.IndexOf("\r\n", StringComparison.Ordinal)]);
            if (head.StartsWith("HTTP/1.1 101", StringComparison.Ordinal))
            {
                return answers;
            }
            await stream.ReadExactlyAsync(new byte[ContentLength(head)], timeout.Token);
        }
    }

    [Fact]
    public async Task After_a_refusal_the_connection_still_speaks_HTTP_and_can_upgrade()
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(_lean.Ws.Host, _lean.Ws.Port);
        var stream = tcp.GetStream();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));

        await stream.WriteAsync(Encoding.ASCII.GetBytes(Head("/echo?room=1").Replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8")), timeout.Token);
        var refused = await RawFrames.ReadHeadAsync(stream, timeout.Token);
        Assert.StartsWith("HTTP/1.1 426", refused);
        var length = ContentLength(refused);
        await stream.ReadExactlyAsync(new byte[length], timeout.Token);

        await stream.WriteAsync(Encoding.ASCII.GetBytes(Head("/echo?room=1")), timeout.Token);
        Assert.StartsWith("HTTP/1.1 101", await RawFrames.ReadHeadAsync(stream, timeout.Token));
        await stream.WriteAsync(RawFrames.Encode(RawFrame.Text, "after a refusal"u8), timeout.Token);
        var echoed = await RawFrames.ReadAsync(stream, expectMasked: false, timeout.Token);
        Assert.Equal("after a refusal", Encoding.UTF8.GetString(echoed.Payload));
    }

    [Fact]
    public async Task A_head_in_several_pieces_goes_to_Kestrel_and_still_upgrades()
    {
        _recorder.Clear();
        using var tcp = new TcpClient { NoDelay = true };
        await tcp.ConnectAsync(_lean.Ws.Host, _lean.Ws.Port);
        var stream = tcp.GetStream();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        var head = Encoding.ASCII.GetBytes(Head("/echo?room=1"));

        await stream.WriteAsync(head.AsMemory(0, 20), timeout.Token);
        await Task.Delay(200);
        await stream.WriteAsync(head.AsMemory(20), timeout.Token);

        Assert.StartsWith("HTTP/1.1 101", await RawFrames.ReadHeadAsync(stream, timeout.Token));
        Assert.DoesNotContain("LeanExchange", _recorder.Take());
    }

    [Fact]
    public async Task A_client_that_sends_nothing_is_cut_after_the_keep_alive_timeout()
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(_lean.Ws.Host, _lean.Ws.Port);
        var started = DateTime.UtcNow;
        var read = await tcp.GetStream().ReadAsync(new byte[16]).AsTask().WaitAsync(TimeSpan.FromSeconds(15));
        Assert.Equal(0, read);
        Assert.InRange(DateTime.UtcNow - started, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(10));
    }

    /// <summary>The status line and the headers a client acts on, with what varies per run (keys, dates) left out.</summary>
    private static async Task<(string Answer, bool Lean)> StatusAsync(GatewayServer gateway, string head, CapturingLoggerProvider? logs)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(gateway.Ws.Host, gateway.Ws.Port);
        var port = $":{((System.Net.IPEndPoint)tcp.Client.LocalEndPoint!).Port} ";
        var stream = tcp.GetStream();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head), timeout.Token);
        var answer = await RawFrames.ReadHeadAsync(stream, timeout.Token);
        var lines = answer.Split("\r\n", StringSplitOptions.RemoveEmptyEntries);
        var kept = lines.Skip(1)
            .Where(line => line.StartsWith("Upgrade:", StringComparison.OrdinalIgnoreCase)
                || line.StartsWith("Connection:", StringComparison.OrdinalIgnoreCase)
                || line.StartsWith("Sec-WebSocket-Version:", StringComparison.OrdinalIgnoreCase)
                || line.StartsWith("Content-Type:", StringComparison.OrdinalIgnoreCase))
            .Select(line => line.ToLowerInvariant())
            .Order();
        var lean = logs is not null && logs.Lines.Any(line => line.Id.Id == 172 && line.Message.Contains(port, StringComparison.Ordinal));
        return (string.Join(" | ", lines.Take(1).Concat(kept)), lean);
    }

    private static int ContentLength(string head) =>
        head.Split("\r\n").Where(line => line.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase))
            .Select(line => int.Parse(line["Content-Length:".Length..].Trim(), System.Globalization.CultureInfo.InvariantCulture))
            .DefaultIfEmpty(0).Single();

    private static string Head(string path, string? key = null) =>
        $"GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        $"Sec-WebSocket-Key: {key ?? RawFrames.NewKey()}\r\nSec-WebSocket-Version: 13\r\n\r\n";

    /// <summary>Notes the type of the request's feature collection for every proxied request.</summary>
    private sealed class ContextRecorder : ITransformProvider
    {
        private readonly ConcurrentQueue<string> _seen = new();

        public void ValidateRoute(TransformRouteValidationContext context)
        {
        }

        public void ValidateCluster(TransformClusterValidationContext context)
        {
        }

        public void Apply(TransformBuilderContext context) => context.AddRequestTransform(transform =>
        {
            _seen.Enqueue(transform.HttpContext.Features.GetType().FullName!);
            return default;
        });

        public void Clear() => _seen.Clear();

        /// <summary>The one request proxied since <see cref="Clear"/>.</summary>
        public string Take()
        {
            Assert.True(_seen.TryDequeue(out var seen), "no request was proxied");
            Assert.True(_seen.IsEmpty, "more than one request was proxied");
            return seen;
        }
    }
}
