using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text.Json.Nodes;
using Gateway.Tests.Infrastructure;
using Gateway.Tests.Relay;
using Xunit.Abstractions;

namespace Gateway.Tests.Lifecycle;

/// <summary>The drain on SIGTERM, on the built program run as a process, as a load balancer and its clients see it.</summary>
[Collection(SerialCollection.Name)]
public sealed class DrainSequenceTests(ITestOutputHelper output)
{
    private const int Tunnels = 100;
    private static readonly TimeSpan Delay = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan Period = TimeSpan.FromSeconds(3);

    /// <param name="lean">The lean HTTP/1.1 path, where a tunnel outlives its request and holds the connection itself,
    /// or Kestrel's, where the request lasts as long as the tunnel: the drain closes both, and Kestrel waits for both.</param>
    /// <param name="socketTakeover">The gateway's own transport, whose sockets the lean path's tunnels take over.</param>
    [Theory]
    [InlineData(true, false)]
    [InlineData(false, false)]
    [InlineData(true, true)]
    public async Task SIGTERM_turns_unready_first_keeps_accepting_for_the_delay_then_spreads_the_closes_over_the_period_and_exits_0(bool lean,
        bool socketTakeover)
    {
        await using var backend = new RawBackend();
        var (ws, admin) = (FreePort(), FreePort());
        var directory = Directory.CreateTempSubdirectory("gateway-drain-").FullName;
        var config = RelayConfig.Build(backend.Address, RelayConfig.KeepAlive("00:00:30", "00:00:15"), lean: lean,
            socketTakeover: socketTakeover);
        var gateway = (JsonObject)config["Gateway"]!;
        gateway["Listeners"] = new JsonObject { ["ws"] = new JsonObject { ["Address"] = "127.0.0.1", ["Port"] = ws } };
        gateway["Tls"] = new JsonObject();
        gateway["Admin"] = new JsonObject { ["Address"] = "127.0.0.1", ["Port"] = admin };
        gateway["DataProtection"] = new JsonObject { ["KeyDirectory"] = Path.Combine(directory, "keys") };
        gateway["Warmup"] = new JsonObject { ["Enabled"] = false };
        gateway["ShutdownTimeout"] = "00:00:10";
        gateway["Drain"] = new JsonObject { ["Delay"] = Delay.ToString("c"), ["Period"] = Period.ToString("c") };
        var path = Path.Combine(directory, "gateway.json");
        await File.WriteAllTextAsync(path, config.ToJsonString());

        using var process = Start(path);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        var readyz = new Uri($"http://127.0.0.1:{admin}/readyz");
        await Retry.Eventually(async () => Assert.Equal(HttpStatusCode.OK, (await http.GetAsync(readyz)).StatusCode), TimeSpan.FromSeconds(30));

        var gatewayUri = new Uri($"http://127.0.0.1:{ws}/");
        var clients = new List<RawWebSocketClient>();
        try
        {
            for (var i = 0; i < Tunnels; i++)
            {
                clients.Add(await RawWebSocketClient.ConnectAsync(gatewayUri, $"/raw/drain{i}"));
            }
            var clock = Stopwatch.StartNew();
            var closes = clients.Select(async client =>
            {
                var close = await client.ReceiveAsync(TimeSpan.FromSeconds(20));
                var at = clock.Elapsed;
                if (close is { Opcode: RawFrame.Close })
                {
                    await client.SendAsync(RawFrames.CloseFrame(close.CloseCode)); // as a browser answers
                }
                return (close, at);
            }).ToList();

            Assert.Equal(0, Kill(process.Id, Sigterm));
            var unreadyAt = await WaitUnreadyAsync(http, readyz, clock);

            // The listeners still take new clients during the delay (the balancer has not noticed yet).
            await using (var late = await RawWebSocketClient.ConnectAsync(gatewayUri, "/raw/late"))
            {
                Assert.True(clock.Elapsed < Delay, $"the late client connected at {clock.Elapsed}, after the delay");
            }

            var results = await Task.WhenAll(closes);
            Assert.All(results, r => Assert.True(r.close is { Opcode: RawFrame.Close, CloseCode: 1001 }, $"a client got {r.close?.ToString() ?? "nothing"}"));
            Assert.All(results, r => Assert.Equal("gateway shutting down", r.close!.CloseReason));
            var first = results.Min(r => r.at);
            var last = results.Max(r => r.at);
            output.WriteLine($"not ready at {unreadyAt.TotalMilliseconds:0} ms; Closes from {first.TotalMilliseconds:0} to {last.TotalMilliseconds:0} ms");
            Assert.True(unreadyAt < first, $"/readyz said 503 at {unreadyAt}, the first Close came at {first}");
            Assert.True(first >= Delay - TimeSpan.FromMilliseconds(100), $"the first Close came at {first}, before the delay ended");
            // Spread, not all at once: the last Close comes near the period's end. Measured from the delay's end rather than
            // from the first Close, which a loaded machine can make late (seen: 0.8 s late, the spread then 2.2 s of 3).
            Assert.True(last >= Delay + Period * 0.8, $"the last Close came at {last}, before 80 % of the period {Period} after the delay");
            Assert.True(last - first >= Period * 0.5, $"the Closes spanned {last - first}, not half of {Period}");

            using var exit = new CancellationTokenSource(TimeSpan.FromSeconds(15));
            await process.WaitForExitAsync(exit.Token);
            Assert.Equal(0, process.ExitCode);
            // The backend heard 1001 on every tunnel (and on the late one, whose client went away without a Close).
            await Retry.Eventually(() => Assert.Equal(Tunnels + 1, backend.Received.Count(f => f is { Opcode: RawFrame.Close, CloseCode: 1001 })), TimeSpan.FromSeconds(5));
        }
        finally
        {
            foreach (var client in clients)
            {
                await client.DisposeAsync();
            }
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
            Directory.Delete(directory, recursive: true);
        }
    }

    private static async Task<TimeSpan> WaitUnreadyAsync(HttpClient http, Uri readyz, Stopwatch clock)
    {
        var deadline = clock.Elapsed + TimeSpan.FromSeconds(5);
        while (clock.Elapsed < deadline)
        {
            var response = await http.GetAsync(readyz);
            if (response.StatusCode == HttpStatusCode.ServiceUnavailable)
            {
                return clock.Elapsed;
            }
            await Task.Delay(5);
        }
        throw new TimeoutException("/readyz never said 503");
    }

    private static Process Start(string config)
    {
        var info = new ProcessStartInfo("dotnet") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Gateway.dll"));
        info.ArgumentList.Add("--config");
        info.ArgumentList.Add(config);
        info.Environment.Remove("GATEWAY_CONFIG");
        var process = Process.Start(info)!;
        // Read and dropped, so that a full pipe never blocks the gateway's logging.
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return process;
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private const int Sigterm = 15;

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);
}
