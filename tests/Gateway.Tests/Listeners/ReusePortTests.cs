using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Gateway.Configuration;
using Gateway.Listeners;
using Gateway.Tests.Infrastructure;
using Gateway.Warmup;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Tests.Listeners;

/// <summary>
/// <c>Gateway:ReusePort</c>: gateway processes share their public ports (SO_REUSEPORT) and the kernel spreads
/// connections over them; each keeps an admin port of its own; one that does not opt in cannot bind.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed partial class ReusePortTests : IDisposable
{
    private const string Opened = "gateway_websocket_connections_opened_total";
    private static readonly TimeSpan StartTimeout = TimeSpan.FromSeconds(60);

    private readonly string _directory = Directory.CreateTempSubdirectory("gateway-reuseport-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [GeneratedRegex(@"Listener admin bound to 127\.0\.0\.1:(\d+) ")]
    private static partial Regex AdminBound();

    [Fact]
    public async Task Two_processes_share_the_port_each_keeps_serving_and_one_without_ReusePort_cannot_bind()
    {
        await using var backend = new RawBackend();
        using var port = new SharedPort();
        var config = WriteConfig(port.Port, backend.Address);
        // As the systemd template does: one file for every instance, the admin port from each one's environment
        // (port 0 here, read back from the startup log; the file's 9901 would make the second process fail).
        var environment = new Dictionary<string, string> { ["Gateway__Admin__Port"] = "0" };

        await using var first = GatewayProcess.Start(environment, "--config", config);
        await using var second = GatewayProcess.Start(environment, "--config", config);
        var firstAdmin = await AdminOf(first);
        var secondAdmin = await AdminOf(second);
        Assert.NotEqual(firstAdmin, secondAdmin);
        await first.WaitForLineAsync(new Regex($@"Listener ws bound to 127\.0\.0\.1:{port.Port} \(public, SO_REUSEPORT"), StartTimeout);

        var shared = new Uri($"http://127.0.0.1:{port.Port}/");
        const int Connections = 200;
        await ConnectAsync(shared, Connections);

        // The kernel picks a listen socket per connection by a hash of its addresses and ports: both get some.
        var (onFirst, onSecond) = await Retry.Eventually(async () =>
        {
            var a = (await MetricsScrape.FetchAsync(firstAdmin)).Value(Opened);
            var b = (await MetricsScrape.FetchAsync(secondAdmin)).Value(Opened);
            Assert.Equal(Connections, a + b);
            return (a, b);
        }, TimeSpan.FromSeconds(10));
        Assert.True(onFirst > 0 && onSecond > 0, $"first {onFirst}, second {onSecond}");

        // A process that does not set SO_REUSEPORT is refused the port, with the usual single line and exit code.
        var (exitCode, _, stderr) = await GatewayProcess.RunAsync(StartTimeout,
            new Dictionary<string, string> { ["Gateway__Admin__Port"] = "0", ["Gateway__ReusePort"] = "false" }, "--config", config);
        Assert.Equal(3, exitCode);
        Assert.Contains($"Gateway:Listeners:ws: cannot listen on port {port.Port}: the address is already in use", stderr);
        Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));

        // Stopping one (SIGTERM, as systemd does) leaves the other serving every new connection.
        first.Terminate();
        Assert.Equal(0, await first.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        await ConnectAsync(shared, 50);
        await Retry.Eventually(async () =>
            Assert.Equal(onSecond + 50, (await MetricsScrape.FetchAsync(secondAdmin)).Value(Opened)), TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task The_warmup_uses_a_private_twin_so_no_session_lands_on_another_process()
    {
        // Another member of the port's group that accepts nothing: a warm-up session the kernel gave it would hang.
        using var port = new SharedPort(listen: true);
        await using var backend = await Backend.StartAsync("b1");
        var config = GatewayServer.Config(GatewayServer.Proxy([("chat", "/chat", "chat")], [("chat", [backend])]));
        var gatewaySection = (JsonObject)config["Gateway"]!;
        gatewaySection["Listeners"] = new JsonObject { ["ws"] = new JsonObject { ["Address"] = "127.0.0.1", ["Port"] = port.Port } };
        gatewaySection["ReusePort"] = true;
        gatewaySection["Warmup"] = new JsonObject { ["Enabled"] = true, ["MaxDuration"] = "00:00:03" };

        await using var gateway = await GatewayServer.StartAsync(config);
        var twin = Assert.Single(gateway.Services.GetRequiredService<BoundListeners>().All, l => l.Listener.WarmupOnly);
        Assert.Equal("ws", twin.Listener.Name);
        Assert.NotEqual(port.Port, twin.EndPoint!.Port);
        Assert.Equal(port.Port, gateway.Ws.Port);

        var warmup = gateway.Services.GetRequiredService<WarmupService>();
        await warmup.Completion.WaitAsync(TimeSpan.FromSeconds(20));
        var report = warmup.Report!;
        Assert.Equal(["ws (HTTP/1.1)"], report.Targets);
        Assert.True(report.Sessions > 0, "no warm-up session");
        Assert.Equal(0, report.Failures);
        // Not one warm-up connection went to the other member of the group.
        Assert.False(port.HasPendingConnection, "a warm-up connection reached the shared port");
    }

    [Fact]
    public void With_ReusePort_the_admin_port_may_not_be_a_public_port()
    {
        var error = Assert.Throws<GatewayConfigurationException>(() => InMemoryGatewayOptions.Load(
            ("Gateway:ReusePort", "true"), ("Gateway:Listeners:ws:Port", "8080"), ("Gateway:Admin:Port", "8080")));
        Assert.Equal("Gateway:Admin:Port", error.Key);
        Assert.Contains("admin port of its own", error.Message);
    }

    private string WriteConfig(int port, Uri backend)
    {
        var config = new JsonObject
        {
            ["Logging"] = new JsonObject { ["LogLevel"] = new JsonObject { ["Default"] = "Warning", ["Gateway.Listeners"] = "Information" } },
            ["Gateway"] = new JsonObject
            {
                ["Listeners"] = new JsonObject { ["ws"] = new JsonObject { ["Address"] = "127.0.0.1", ["Port"] = port } },
                ["Admin"] = new JsonObject { ["Address"] = "127.0.0.1", ["Port"] = 9901 },
                ["ReusePort"] = true,
                ["Warmup"] = new JsonObject { ["Enabled"] = false },
                ["ShutdownTimeout"] = "00:00:05",
                ["Drain"] = new JsonObject { ["Delay"] = "00:00:00", ["Period"] = "00:00:01" },
                ["DataProtection"] = new JsonObject { ["KeyDirectory"] = Path.Combine(_directory, "keys") },
            },
            ["ReverseProxy"] = new JsonObject
            {
                ["Routes"] = new JsonObject { ["raw"] = new JsonObject { ["ClusterId"] = "raw", ["Match"] = new JsonObject { ["Path"] = "/raw/{**rest}" } } },
                ["Clusters"] = new JsonObject
                {
                    ["raw"] = new JsonObject { ["Destinations"] = new JsonObject { ["d1"] = new JsonObject { ["Address"] = backend.ToString() } } },
                },
            },
        };
        var path = Path.Combine(_directory, "gateway.json");
        File.WriteAllText(path, config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
        return path;
    }

    /// <summary>The admin listener's address from the process's startup log, once it answers ready.</summary>
    private static async Task<Uri> AdminOf(RunningGatewayProcess process)
    {
        var match = await process.WaitForLineAsync(AdminBound(), StartTimeout);
        var admin = new Uri($"http://127.0.0.1:{match.Groups[1].Value}/");
        using var http = new HttpClient();
        await Retry.Eventually(async () =>
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync(new Uri(admin, "/readyz"))).StatusCode), TimeSpan.FromSeconds(20));
        return admin;
    }

    /// <summary>Opens <paramref name="count"/> WebSockets, twenty at a time, each closed once its handshake succeeded.</summary>
    private static async Task ConnectAsync(Uri server, int count)
    {
        for (var done = 0; done < count; done += 20)
        {
            await Task.WhenAll(Enumerable.Range(0, Math.Min(20, count - done)).Select(async _ =>
            {
                await using var client = await RawWebSocketClient.ConnectAsync(server, "/raw/room");
            }));
        }
    }
}
