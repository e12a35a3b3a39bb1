using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Tls;

/// <summary>
/// The real SIGHUP, sent to a gateway running as its own process (as systemd's ExecReload or `kill -HUP` would):
/// sending it to the test host would reach every gateway the parallel tests are running.
/// </summary>
public sealed class SighupProcessTests : IDisposable
{
    private const int Sighup = 1;
    private const int Sigterm = 15;

    private readonly TestCertificates _certificates = new();

    public void Dispose() => _certificates.Dispose();

    [Fact]
    public async Task Sighup_reloads_certificates_and_configuration_and_the_process_keeps_running()
    {
        var (pem, key, _) = _certificates.IssueServer("server", "localhost");
        var configPath = Path.Combine(_certificates.Directory, "gateway.json");
        await File.WriteAllTextAsync(configPath, Config(pem, key).ToJsonString(new JsonSerializerOptions { WriteIndented = true }));

        using var gateway = RunningGateway.Start(configPath);
        // Logged once every hosted service has started, the SIGHUP handler included.
        await gateway.WaitForLineAsync("Application started", TimeSpan.FromSeconds(30));

        Assert.Equal(0, Kill(gateway.Id, Sighup));
        await gateway.WaitForLineAsync("SIGHUP: reloading the configuration file", TimeSpan.FromSeconds(10));
        await gateway.WaitForLineAsync($"Configuration file {configPath} reloaded", TimeSpan.FromSeconds(10));
        // Nothing changed on disk, so no watcher reloaded anything: this line is the signal's.
        await gateway.WaitForLineAsync("TLS certificates reloaded on SIGHUP: no certificate changed", TimeSpan.FromSeconds(10));

        // Still running: SIGTERM now ends it normally (a process that SIGHUP had killed could not exit 0).
        Assert.Equal(0, Kill(gateway.Id, Sigterm));
        Assert.Equal(0, await gateway.WaitForExitAsync(TimeSpan.FromSeconds(20)));
    }

    private JsonObject Config(string pem, string key) => new()
    {
        ["Logging"] = new JsonObject
        {
            ["LogLevel"] = new JsonObject { ["Default"] = "Warning", ["Gateway"] = "Information", ["Microsoft.Hosting.Lifetime"] = "Information" },
        },
        ["Gateway"] = new JsonObject
        {
            ["Listeners"] = new JsonObject { ["wss"] = new JsonObject { ["Address"] = "127.0.0.1", ["Port"] = 0, ["Tls"] = true } },
            ["Tls"] = new JsonObject
            {
                ["Certificates"] = new JsonArray(new JsonObject { ["Path"] = pem, ["KeyPath"] = key }),
            },
            ["Admin"] = new JsonObject { ["Address"] = "127.0.0.1", ["Port"] = 0 },
            ["DataProtection"] = new JsonObject { ["KeyDirectory"] = Path.Combine(_certificates.Directory, "keys") },
            ["Warmup"] = new JsonObject { ["Enabled"] = false },
            ["ShutdownTimeout"] = "00:00:02",
            ["Drain"] = new JsonObject { ["Delay"] = "00:00:00", ["Period"] = "00:00:00" },
        },
        ["ReverseProxy"] = new JsonObject
        {
            ["Routes"] = new JsonObject { ["r"] = new JsonObject { ["ClusterId"] = "c", ["Match"] = new JsonObject { ["Path"] = "/{**rest}" } } },
            ["Clusters"] = new JsonObject
            {
                ["c"] = new JsonObject { ["Destinations"] = new JsonObject { ["d"] = new JsonObject { ["Address"] = "http://127.0.0.1:9/" } } },
            },
        },
    };

    [DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int Kill(int pid, int signal);

    /// <summary>The built gateway as a child process whose console lines the test can wait for.</summary>
    private sealed class RunningGateway : IDisposable
    {
        private readonly Process _process;
        private readonly ConcurrentQueue<string> _lines = new();
        private readonly SemaphoreSlim _lineArrived = new(0);

        private RunningGateway(Process process)
        {
            _process = process;
            process.OutputDataReceived += (_, e) => Add(e.Data);
            process.ErrorDataReceived += (_, e) => Add(e.Data);
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
        }

        public int Id => _process.Id;

        public static RunningGateway Start(string configPath)
        {
            // A signal ignored by the parent stays ignored in the child (nohup, some CI runners), and the .NET runtime
            // then leaves SIGHUP alone: give the gateway SIGHUP's default disposition back, as a service manager would.
            var hupIgnored = SighupIgnored();
            var info = new ProcessStartInfo(hupIgnored ? "env" : "dotnet")
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
                WorkingDirectory = AppContext.BaseDirectory,
            };
            if (hupIgnored)
            {
                info.ArgumentList.Add("--default-signal=HUP");
                info.ArgumentList.Add("dotnet");
            }
            info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Gateway.dll"));
            info.ArgumentList.Add("--config");
            info.ArgumentList.Add(configPath);
            info.Environment.Remove("GATEWAY_CONFIG");
            return new RunningGateway(Process.Start(info)!);
        }

        /// <summary>Whether this process ignores SIGHUP (bit 0 of SigIgn in /proc/self/status).</summary>
        private static bool SighupIgnored()
        {
            var line = File.ReadLines("/proc/self/status").FirstOrDefault(l => l.StartsWith("SigIgn:", StringComparison.Ordinal));
            return line is not null && (Convert.ToUInt64(line["SigIgn:".Length..].Trim(), 16) & 1) != 0;
        }

        /// <summary>Waits (bounded) for a console line containing <paramref name="text"/> and returns it.</summary>
        public async Task<string> WaitForLineAsync(string text, TimeSpan within)
        {
            var deadline = DateTime.UtcNow + within;
            while (true)
            {
                if (_lines.FirstOrDefault(line => line.Contains(text, StringComparison.Ordinal)) is { } line)
                {
                    return line;
                }
                var left = deadline - DateTime.UtcNow;
                if (left <= TimeSpan.Zero)
                {
                    throw new TimeoutException($"no line with '{text}' (exited: {_process.HasExited}); output:\n{string.Join('\n', _lines)}");
                }
                await _lineArrived.WaitAsync(left < TimeSpan.FromMilliseconds(200) ? left : TimeSpan.FromMilliseconds(200));
            }
        }

        public async Task<int> WaitForExitAsync(TimeSpan within)
        {
            using var timeout = new CancellationTokenSource(within);
            await _process.WaitForExitAsync(timeout.Token);
            return _process.ExitCode;
        }

        public void Dispose()
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }
            _process.Dispose();
        }

        private void Add(string? line)
        {
            if (line is not null)
            {
                _lines.Enqueue(line);
                _lineArrived.Release();
            }
        }
    }
}
