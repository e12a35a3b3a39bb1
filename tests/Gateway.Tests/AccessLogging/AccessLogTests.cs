using Gateway.Tests.Relay;
using Gateway.AccessLogging;
using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Configuration;
using Gateway.Relay;
using Gateway.Tests.Handshake;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Gateway.Tests.AccessLogging;

[Collection(SerialCollection.Name)]
public sealed class AccessLogTests : IDisposable
{
    private const string Category = "Gateway.AccessLog";
    private readonly TestCertificates _certificates = new();

    public void Dispose() => _certificates.Dispose();

    [Fact]
    public async Task Every_tunnel_ends_with_one_access_log_line_that_says_who_where_how_long_how_much_and_how_it_ended()
    {
        await using var backend = new RawBackend();
        var logs = new CapturingLoggerProvider();
        var config = RelayConfig.Build(backend.Address, RelayConfig.KeepAlive("00:00:30", "00:00:15"));
        config["Logging"]!["LogLevel"]!["Gateway.AccessLog"] = "Information";
        await using var gateway = await GatewayServer.StartAsync(config, services => services.AddSingleton<ILoggerProvider>(logs));

        await using (var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/logged"))
        {
            for (var i = 0; i < 2; i++)
            {
                await client.SendAsync(RawFrames.Encode(RawFrame.Text, "12345"u8));
                Assert.NotNull(await client.ReceiveAsync(TimeSpan.FromSeconds(5)));
            }
            await client.SendAsync(RawFrames.CloseFrame(1000));
            Assert.Equal(RawFrame.Close, (await client.ReceiveAsync(TimeSpan.FromSeconds(5)))!.Opcode);
            await client.Ended.WaitAsync(TimeSpan.FromSeconds(5));
        }

        var line = await Retry.Eventually(() => Task.FromResult(Assert.Single(logs.Records, r => r.Category == Category)), TimeSpan.FromSeconds(5));
        Assert.Equal(LogLevel.Information, line.Level);
        Assert.Equal(320, line.Id.Id);
        Assert.Matches(@"^\d{4}-\d\d-\d\dT\S+ 127\.0\.0\.1 \d+ /raw/logged raw raw d1 HTTP/1\.1 - - - \d+\.\d{3}s client->backend 2 msgs 10 B, backend->client 2 msgs 10 B, 1000 client$", line.Message);
        // Nothing else of the relay's is logged for a tunnel that ended normally.
        Assert.DoesNotContain(logs.Records, r => r.Category.StartsWith("Gateway.Relay", StringComparison.Ordinal) && r.Level >= LogLevel.Information);
    }

    [Theory]
    [InlineData(Transport.Ws, true)]
    [InlineData(Transport.WssHttp11, true)]
    [InlineData(Transport.Ws, false)]
    [InlineData(Transport.WssHttp11, false)]
    [InlineData(Transport.WssHttp2, true)]
    public async Task The_tunnel_line_has_the_path_without_its_query_the_client_port_and_the_tls_protocol_and_cipher(Transport transport, bool lean)
    {
        await using var backend = new RawBackend();
        var logs = new CapturingLoggerProvider();
        // The lean HTTP/1.1 path ends the request at the 101: the line's request fields are copied before it ends.
        await using var gateway = await StartAsync(backend, logs, leanUpgrades: lean);

        var (socket, port) = await ConnectAsync(gateway, transport, "/raw/room-7?token=secret-token&x=1");
        using (socket)
        {
            await WebSocketClient.SendTextAsync(socket, "hello");
            Assert.Equal("hello", await WebSocketClient.ReceiveTextAsync(socket));
            await WebSocketClient.CloseAsync(socket);
        }

        var line = await Retry.Eventually(() => Task.FromResult(Assert.Single(logs.Records, r => r.Category == Category)), TimeSpan.FromSeconds(5));
        Assert.DoesNotContain("secret", line.Message);
        Assert.DoesNotContain("?", line.Message);
        var fields = line.Message.Split(' ');
        Assert.Equal(["127.0.0.1", port.ToString(), "/raw/room-7", "raw", "raw", "d1"], fields[1..7]);
        Assert.Equal(transport == Transport.WssHttp2 ? "HTTP/2" : "HTTP/1.1", fields[7]);
        if (transport == Transport.Ws)
        {
            Assert.Equal(["-", "-"], fields[8..10]);
        }
        else
        {
            Assert.Matches("^Tls1[23]$", fields[8]);
            Assert.Matches("^TLS_[A-Z0-9_]+$", fields[9]);
        }
        Assert.EndsWith(" 1000 client", line.Message);
    }

    [Theory]
    [InlineData(Transport.Ws)]
    [InlineData(Transport.WssHttp2)]
    public async Task Every_refused_handshake_gets_an_access_line_with_status_and_reason_even_when_the_warning_is_throttled(Transport transport)
    {
        await using var backend = new RawBackend();
        var logs = new CapturingLoggerProvider();
        await using var gateway = await StartAsync(backend, logs);

        var ports = new List<int>();
        for (var i = 0; i < 3; i++)
        {
            var (status, port) = await RefusedAsync(gateway, transport, "/raw/room-7?token=secret-token", "https://evil-example.com");
            Assert.Equal(HttpStatusCode.Forbidden, status);
            ports.Add(port);
        }

        var lines = await Retry.Eventually(() =>
        {
            var found = logs.Records.Where(r => r.Category == Category).ToList();
            Assert.Equal(3, found.Count);
            return Task.FromResult(found);
        }, TimeSpan.FromSeconds(5));
        // The warning of Gateway.Handshake is throttled to one per reason and second; the access line is not.
        Assert.True(logs.Records.Count(r => r.Category == "Gateway.Handshake" && r.Message.Contains("403")) < 3);
        for (var i = 0; i < 3; i++)
        {
            Assert.Equal(321, lines[i].Id.Id);
            Assert.DoesNotContain("secret", lines[i].Message);
            var tls = transport == Transport.Ws ? "- -" : "Tls1[23] TLS_[A-Z0-9_]+";
            var protocol = transport == Transport.Ws ? @"HTTP/1\.1" : "HTTP/2";
            Assert.Matches($@"^\S+ 127\.0\.0\.1 {ports[i]} /raw/room-7 raw {protocol} {tls} refused 403 origin$", lines[i].Message);
        }
    }

    [Fact]
    public async Task The_json_format_writes_one_valid_object_per_line_with_stable_names_and_not_through_the_logger()
    {
        await using var backend = new RawBackend();
        var logs = new CapturingLoggerProvider();
        var output = new LinesWriter();
        await using var gateway = await StartAsync(backend, logs, accessLog => accessLog["Format"] = "json", output);

        var (socket, port) = await ConnectAsync(gateway, Transport.WssHttp11, "/raw/room-7?token=secret-token");
        using (socket)
        {
            await WebSocketClient.SendTextAsync(socket, "hello \"quoted\"\n");
            await WebSocketClient.ReceiveTextAsync(socket);
            await WebSocketClient.CloseAsync(socket);
        }
        var (status, refusedPort) = await RefusedAsync(gateway, Transport.Ws, "/raw/x?token=secret", "https://evil-example.com");
        Assert.Equal(HttpStatusCode.Forbidden, status);

        var lines = await Retry.Eventually(() =>
        {
            var all = output.Lines.ToArray();
            Assert.Equal(2, all.Length);
            return Task.FromResult(all);
        }, TimeSpan.FromSeconds(5));
        Assert.All(lines, line => Assert.EndsWith("}\n", line));
        Assert.All(lines, line => Assert.DoesNotContain("secret", line));
        using var tunnel = JsonDocument.Parse(lines.Single(l => l.Contains("\"tunnel\"")));
        using var refused = JsonDocument.Parse(lines.Single(l => l.Contains("\"refused\"")));
        var t = tunnel.RootElement;
        Assert.Equal(
            ["Event", "Start", "Client", "ClientPort", "Path", "Route", "Cluster", "Destination", "Protocol", "TlsProtocol", "TlsCipher",
             "Subprotocol", "Status", "DurationSeconds", "MessagesFromClient", "BytesFromClient", "MessagesFromBackend", "BytesFromBackend",
             "CloseCode", "ClosedBy", "RateLimited"],
            t.EnumerateObject().Select(p => p.Name));
        Assert.Equal(JsonValueKind.Null, t.GetProperty("RateLimited").ValueKind); // no rate limit acted on it
        Assert.Equal("127.0.0.1", t.GetProperty("Client").GetString());
        Assert.Equal(port, t.GetProperty("ClientPort").GetInt32());
        Assert.Equal("/raw/room-7", t.GetProperty("Path").GetString());
        Assert.Matches("^Tls1[23]$", t.GetProperty("TlsProtocol").GetString());
        Assert.StartsWith("TLS_", t.GetProperty("TlsCipher").GetString());
        Assert.Equal(JsonValueKind.Null, t.GetProperty("Subprotocol").ValueKind);
        Assert.Equal(101, t.GetProperty("Status").GetInt32());
        Assert.Equal(1, t.GetProperty("MessagesFromClient").GetInt64());
        Assert.Equal(15, t.GetProperty("BytesFromClient").GetInt64());
        Assert.Equal(1000, t.GetProperty("CloseCode").GetInt32());
        Assert.Equal("client", t.GetProperty("ClosedBy").GetString());
        Assert.True(DateTimeOffset.TryParse(t.GetProperty("Start").GetString(), out _));
        var r = refused.RootElement;
        Assert.Equal(refusedPort, r.GetProperty("ClientPort").GetInt32());
        Assert.Equal("/raw/x", r.GetProperty("Path").GetString());
        Assert.Equal(403, r.GetProperty("Status").GetInt32());
        Assert.Equal("origin", r.GetProperty("Reason").GetString());
        Assert.Equal(JsonValueKind.Null, r.GetProperty("TlsProtocol").ValueKind);
        Assert.DoesNotContain(logs.Records, record => record.Category == Category);
    }

    [Theory]
    [InlineData("text")]
    [InlineData("json")]
    public async Task A_fields_selection_gives_exactly_those_fields_in_that_order(string format)
    {
        await using var backend = new RawBackend();
        var logs = new CapturingLoggerProvider();
        var output = new LinesWriter();
        await using var gateway = await StartAsync(backend, logs, accessLog =>
        {
            accessLog["Format"] = format;
            accessLog["Fields"] = HandshakeGateway.Strings("closecode", "Path", "ClientPort", "Reason");
        }, output);

        var (socket, port) = await ConnectAsync(gateway, Transport.Ws, "/raw/room-7?token=secret-token");
        using (socket)
        {
            await WebSocketClient.CloseAsync(socket);
        }

        if (format == "text")
        {
            var line = await Retry.Eventually(() => Task.FromResult(Assert.Single(logs.Records, r => r.Category == Category)), TimeSpan.FromSeconds(5));
            Assert.Equal($"1000 /raw/room-7 {port} -", line.Message);
        }
        else
        {
            var line = await Retry.Eventually(() => Task.FromResult(Assert.Single(output.Lines)), TimeSpan.FromSeconds(5));
            using var json = JsonDocument.Parse(line);
            Assert.Equal(["CloseCode", "Path", "ClientPort", "Reason"], json.RootElement.EnumerateObject().Select(p => p.Name));
            Assert.Equal(1000, json.RootElement.GetProperty("CloseCode").GetInt32());
            Assert.Equal(port, json.RootElement.GetProperty("ClientPort").GetInt32());
            Assert.Equal(JsonValueKind.Null, json.RootElement.GetProperty("Reason").ValueKind);
        }
    }

    [Fact]
    public async Task In_a_real_process_the_json_lines_on_stdout_are_valid_json_beside_the_console_loggers_text()
    {
        await using var backend = new RawBackend();
        var directory = Directory.CreateTempSubdirectory("gateway-accesslog-").FullName;
        try
        {
            var config = RelayConfig.Build(backend.Address, RelayConfig.KeepAlive("00:00:30", "00:00:15"));
            config["Gateway"]!["Listeners"] = new JsonObject { ["ws"] = new JsonObject { ["Address"] = "127.0.0.1", ["Port"] = 0 } };
            config["Gateway"]!["Warmup"] = new JsonObject { ["Enabled"] = false };
            config["Gateway"]!["Admin"] = new JsonObject { ["Port"] = 0 };
            config["Gateway"]!["DataProtection"] = new JsonObject { ["KeyDirectory"] = Path.Combine(directory, "keys") };
            config["Gateway"]!["AccessLog"] = new JsonObject { ["Format"] = "Json" };
            // The console logger writes its own (simple, two-line) text to the same stdout meanwhile.
            config["Logging"]!["LogLevel"]!["Gateway"] = "Information";
            var path = Path.Combine(directory, "gateway.json");
            await File.WriteAllTextAsync(path, config.ToJsonString());

            await using var process = GatewayProcess.Start(new Dictionary<string, string>(), "--config", path);
            var bound = await process.WaitForLineAsync(new System.Text.RegularExpressions.Regex(@"Listener ws bound to 127\.0\.0\.1:(\d+) "), TimeSpan.FromSeconds(60));
            var ws = new Uri($"ws://127.0.0.1:{bound.Groups[1].Value}/");
            await using (var client = await RawWebSocketClient.ConnectAsync(ws, "/raw/room-7?token=secret-token"))
            {
                await client.SendAsync(RawFrames.CloseFrame(1000));
                Assert.Equal(RawFrame.Close, (await client.ReceiveAsync(TimeSpan.FromSeconds(5)))!.Opcode);
            }
            var refused = await RawConnection.SendAsync(ws, RawRequest.Handshake("/raw/x?token=secret", edits: ["Origin: https://evil-example.com"]));
            Assert.Equal(403, refused.Status);

            await process.WaitForLineAsync(new System.Text.RegularExpressions.Regex("^\\{\"Event\":\"refused\""), TimeSpan.FromSeconds(10));
            await process.WaitForLineAsync(new System.Text.RegularExpressions.Regex("^\\{\"Event\":\"tunnel\""), TimeSpan.FromSeconds(10));
            var lines = process.Output.Split('\n').Where(l => l.StartsWith("{\"Event\":", StringComparison.Ordinal)).ToArray();
            Assert.Equal(2, lines.Length);
            Assert.DoesNotContain(lines, l => l.Contains("secret"));
            foreach (var line in lines)
            {
                using var json = JsonDocument.Parse(line);
                Assert.Equal("127.0.0.1", json.RootElement.GetProperty("Client").GetString());
                Assert.StartsWith("/raw/", json.RootElement.GetProperty("Path").GetString());
            }
            process.Terminate();
            Assert.Equal(0, await process.WaitForExitAsync(TimeSpan.FromSeconds(40)));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task Enabled_false_writes_no_access_line()
    {
        await using var backend = new RawBackend();
        var logs = new CapturingLoggerProvider();
        await using var gateway = await StartAsync(backend, logs, accessLog => accessLog["Enabled"] = false);

        var (socket, _) = await ConnectAsync(gateway, Transport.Ws, "/raw/room");
        using (socket)
        {
            await WebSocketClient.CloseAsync(socket);
        }
        await RefusedAsync(gateway, Transport.Ws, "/raw/room", "https://evil-example.com");
        // The refusal came after the tunnel had closed: by its warning, either line would have been written.
        await Retry.Eventually(() => Assert.Contains(logs.Records, r => r.Category == "Gateway.Handshake"), TimeSpan.FromSeconds(5));
        Assert.DoesNotContain(logs.Records, r => r.Category == Category);
    }

    private async Task<GatewayServer> StartAsync(RawBackend backend, CapturingLoggerProvider logs, Action<JsonObject>? accessLog = null, TextWriter? output = null,
        bool leanUpgrades = true)
    {
        var (certificate, key, _) = _certificates.IssueServer("server", "localhost");
        var config = RelayConfig.Build(backend.Address, RelayConfig.KeepAlive("00:00:30", "00:00:15"), lean: leanUpgrades);
        config["Gateway"]!["Tls"] = new JsonObject { ["Certificates"] = new JsonArray(new JsonObject { ["Path"] = certificate, ["KeyPath"] = key }) };
        config["Logging"]!["LogLevel"]!["Gateway.AccessLog"] = "Information";
        config["Logging"]!["LogLevel"]!["Gateway.Handshake"] = "Information";
        if (accessLog is not null)
        {
            var section = new JsonObject();
            accessLog(section);
            config["Gateway"]!["AccessLog"] = section;
        }
        return await GatewayServer.StartAsync(config, services =>
        {
            services.AddSingleton<ILoggerProvider>(logs);
            if (output is not null)
            {
                services.AddSingleton(provider => new AccessLogWriter(
                    provider.GetRequiredService<GatewayOptions>(), provider.GetRequiredService<ILoggerFactory>(), output));
            }
        });
    }

    /// <summary>A ClientWebSocket over the given transport whose TCP connection's local port the test knows.</summary>
    private async Task<(ClientWebSocket Socket, int LocalPort)> ConnectAsync(GatewayServer gateway, Transport transport, string pathAndQuery,
        string? origin = null)
    {
        var localPort = 0;
        var handler = new SocketsHttpHandler
        {
            ConnectCallback = async (context, cancellationToken) =>
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                try
                {
                    await socket.ConnectAsync(context.DnsEndPoint, cancellationToken);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
                localPort = ((IPEndPoint)socket.LocalEndPoint!).Port;
                return new NetworkStream(socket, ownsSocket: true);
            },
        };
        handler.SslOptions.RemoteCertificateValidationCallback = _certificates.Validate;
        var client = new ClientWebSocket();
        client.Options.CollectHttpResponseDetails = true;
        client.Options.KeepAliveInterval = TimeSpan.Zero;
        if (transport == Transport.WssHttp2)
        {
            client.Options.HttpVersion = HttpVersion.Version20;
            client.Options.HttpVersionPolicy = HttpVersionPolicy.RequestVersionExact;
        }
        if (origin is not null)
        {
            client.Options.SetRequestHeader("Origin", origin);
        }
        var uri = new Uri(transport == Transport.Ws ? gateway.Ws : gateway.Wss, pathAndQuery.TrimStart('/'));
        using var timeout = new CancellationTokenSource(WebSocketClient.Timeout);
        try
        {
            await client.ConnectAsync(uri, new HttpMessageInvoker(handler), timeout.Token);
        }
        catch (WebSocketException)
        {
            return (client, localPort);
        }
        return (client, localPort);
    }

    private async Task<(HttpStatusCode Status, int LocalPort)> RefusedAsync(GatewayServer gateway, Transport transport, string pathAndQuery, string origin)
    {
        var (socket, port) = await ConnectAsync(gateway, transport, pathAndQuery, origin);
        using (socket)
        {
            Assert.NotEqual(WebSocketState.Open, socket.State);
            return (socket.HttpStatusCode, port);
        }
    }

    /// <summary>Collects what the JSON access log writes: one Write per line.</summary>
    private sealed class LinesWriter : TextWriter
    {
        public ConcurrentQueue<string> Lines { get; } = new();

        public override Encoding Encoding => Encoding.UTF8;

        public override void Write(string? value)
        {
            if (value is not null)
            {
                Lines.Enqueue(value);
            }
        }

        public override void Write(char value) => throw new NotSupportedException("one Write per line expected");
    }
}
