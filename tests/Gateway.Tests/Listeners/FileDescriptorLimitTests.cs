using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Gateway.Listeners;
using Gateway.Tests.Infrastructure;
using Gateway.Tests.Relay;
using Microsoft.Extensions.Logging.Abstractions;

namespace Gateway.Tests.Listeners;

[Collection(SerialCollection.Name)]
public sealed partial class FileDescriptorLimitTests
{
    [Fact]
    public void The_open_file_limit_is_read_from_proc()
    {
        // On Linux the soft limit is in /proc/self/limits; this machine family caps it at 20,000.
        Assert.True(OperatingSystem.IsLinux());
        var limit = FileDescriptorLimit.ReadLimit();
        Assert.NotNull(limit);
        Assert.InRange(limit!.Value, 64, long.MaxValue);
    }

    [Theory]
    [InlineData(20_000, 250, 400, 9_675)]  // this machine: the bench's 9,000 tunnels fit
    [InlineData(1_024, 250, 256, 259)]
    [InlineData(400, 250, 256, 0)]         // nothing left after the process's own files and the margin
    public void The_budget_is_two_descriptors_per_tunnel_after_what_is_in_use_and_a_margin(long limit, int inUse, int margin, int capacity)
    {
        var budget = new FileDescriptorLimit(limit, inUse, NullLogger.Instance);
        Assert.Equal(margin, budget.Margin);
        Assert.Equal(capacity, budget.Capacity);
    }

    [Fact]
    public void Tunnels_enter_up_to_the_capacity_and_leaving_makes_room()
    {
        var budget = new FileDescriptorLimit(1_000, 240, NullLogger.Instance); // (1000 - 240 - 256) / 2 = 252
        for (var i = 0; i < budget.Capacity; i++)
        {
            Assert.True(budget.TryEnter());
        }
        Assert.False(budget.TryEnter());
        Assert.Equal(budget.Capacity, budget.Open);
        budget.Exit();
        Assert.True(budget.TryEnter());
        Assert.Equal(int.MaxValue, new FileDescriptorLimit(null, 240, NullLogger.Instance).Capacity);
    }

    [Fact]
    public async Task At_its_open_file_limit_the_gateway_refuses_handshakes_with_503_and_keeps_running()
    {
        // The gateway as its own process under a small `ulimit -n`, so the limit is real and reached quickly.
        await using var backend = new RawBackend();
        var (wsPort, adminPort) = (FreePort(), FreePort());
        var config = RelayConfig.Build(backend.Address, RelayConfig.KeepAlive("00:00:00", "00:00:01"), path: "/fd");
        var listeners = config["Gateway"]!["Listeners"]!.AsObject();
        listeners.Remove("wss");
        listeners["ws"]!["Port"] = wsPort;
        config["Gateway"]!["Admin"]!["Port"] = adminPort;
        config["Logging"]!["LogLevel"]!["Gateway.Listeners"] = "Information";
        // The warm-up's sessions would hold descriptors while the test counts them.
        config["Gateway"]!["Warmup"] = new JsonObject { ["Enabled"] = false };
        var configPath = Path.Combine(Path.GetTempPath(), $"gateway-fd-{Guid.NewGuid():N}.json");
        await File.WriteAllTextAsync(configPath, config.ToJsonString());

        var info = new ProcessStartInfo("bash")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add($"ulimit -n 700 && exec dotnet '{Path.Combine(AppContext.BaseDirectory, "Gateway.dll")}' --config '{configPath}'");
        info.Environment.Remove("GATEWAY_CONFIG");
        using var process = Process.Start(info)!;
        var output = new StringBuilder();
        process.OutputDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.ErrorDataReceived += (_, e) => { lock (output) { output.AppendLine(e.Data); } };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var clients = new List<RawWebSocketClient>();
        try
        {
            var capacity = await Retry.Eventually(() =>
            {
                lock (output)
                {
                    var match = RoomFor().Match(output.ToString());
                    Assert.True(match.Success, $"no open-file line yet: {output}");
                    return Task.FromResult(int.Parse(match.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture));
                }
            }, TimeSpan.FromSeconds(20));
            Assert.InRange(capacity, 20, 200);
            var ws = new Uri($"http://127.0.0.1:{wsPort}");
            await Retry.Eventually(async () => { using var tcp = new TcpClient(); await tcp.ConnectAsync(IPAddress.Loopback, wsPort); }, TimeSpan.FromSeconds(20));

            for (var i = 0; i < capacity; i++)
            {
                clients.Add(await RawWebSocketClient.ConnectAsync(ws, $"/fd/{i}"));
            }
            var refused = await Assert.ThrowsAsync<InvalidOperationException>(() => RawWebSocketClient.ConnectAsync(ws, "/fd/one-more"));
            Assert.StartsWith("handshake refused: HTTP/1.1 503", refused.Message);
            Assert.Contains("Retry-After: 5", refused.Message, StringComparison.OrdinalIgnoreCase);
            Assert.Equal(capacity, Volatile.Read(ref backend.Handshakes)); // the refused one never reached the backend

            // The open tunnels are untouched, and one closing makes room for one more.
            foreach (var client in new[] { clients[0], clients[^1] })
            {
                await client.SendAsync(RawFrames.Encode(RawFrame.Text, "still here"u8));
                Assert.Equal("still here", Encoding.UTF8.GetString((await client.ReceiveAsync())!.Payload));
            }
            await clients[0].DisposeAsync();
            clients.RemoveAt(0);
            clients.Add(await Retry.Eventually(() => RawWebSocketClient.ConnectAsync(ws, "/fd/after"), TimeSpan.FromSeconds(10)));

            using var http = new HttpClient();
            var metrics = await http.GetStringAsync($"http://127.0.0.1:{adminPort}/metrics");
            Assert.Matches(@"gateway_handshake_refused_total\{[^}]*reason=""descriptors""[^}]*\} [1-9]", metrics);
            Assert.False(process.HasExited);
            lock (output)
            {
                Assert.Contains("At the open-file limit", output.ToString());
                Assert.DoesNotContain("Too many open files", output.ToString());
            }
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
            await process.WaitForExitAsync();
            File.Delete(configPath);
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    [GeneratedRegex(@"room for (\d+) proxied WebSockets")]
    private static partial Regex RoomFor();
}
