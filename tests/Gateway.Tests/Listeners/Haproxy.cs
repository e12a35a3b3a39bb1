using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Listeners;

/// <summary>
/// HAProxy (Debian package <c>haproxy</c>) in TCP mode as a real L4 balancer in front of the gateway, where it is
/// installed: the PROXY protocol's reference sender. Started as a child process on loopback; killed by its own PID.
/// </summary>
public sealed class Haproxy : IAsyncDisposable
{
    private readonly Process _process;
    private readonly string _directory;
    private readonly Task<string> _stderr;

    private Haproxy(Process process, string directory, Dictionary<string, Uri> frontends)
    {
        _process = process;
        _directory = directory;
        Frontends = frontends;
        _stderr = process.StandardError.ReadToEndAsync();
        _ = process.StandardOutput.ReadToEndAsync();
    }

    /// <summary>Each frontend's address, by name, with the scheme of the gateway listener behind it.</summary>
    public Dictionary<string, Uri> Frontends { get; }

    public static string? Find() =>
        new[] { "/usr/sbin/haproxy", "/usr/bin/haproxy", "/usr/local/sbin/haproxy" }.FirstOrDefault(File.Exists);

    /// <summary>Starts HAProxy with one TCP frontend per (name, gateway listener, server options such as <c>send-proxy-v2</c>).</summary>
    public static Task<Haproxy> StartAsync(params (string Name, Uri Listener, string ServerOptions)[] routes) =>
        StartAsync(routes.Select(r => new HaproxyFrontend(r.Name, [r.Listener], r.ServerOptions)).ToArray());

    /// <summary>Starts HAProxy with one TCP frontend per entry, each balancing over its gateway listeners.</summary>
    public static async Task<Haproxy> StartAsync(params HaproxyFrontend[] frontendsToServe)
    {
        var directory = Directory.CreateTempSubdirectory("gateway-haproxy-").FullName;
        var config = new System.Text.StringBuilder()
            .AppendLine("global")
            .AppendLine("  nbthread 1")
            .AppendLine("defaults")
            .AppendLine("  mode tcp")
            .AppendLine("  timeout connect 5s")
            .AppendLine("  timeout client 30s")
            .AppendLine("  timeout server 30s");
        var frontends = new Dictionary<string, Uri>();
        foreach (var frontend in frontendsToServe)
        {
            var port = FreePort();
            frontends[frontend.Name] = new Uri($"{frontend.Servers[0].Scheme}://127.0.0.1:{port}/");
            config.AppendLine($"frontend {frontend.Name}")
                .AppendLine($"  bind 127.0.0.1:{port}")
                .AppendLine($"  default_backend {frontend.Name}")
                .AppendLine($"backend {frontend.Name}")
                .AppendLine($"  balance {frontend.Balance}");
            for (var i = 0; i < frontend.Servers.Count; i++)
            {
                config.AppendLine($"  server gateway{i + 1} 127.0.0.1:{frontend.Servers[i].Port} {frontend.ServerOptions}");
            }
        }
        // A frontend that only says HAProxy is up (it binds every frontend before it serves any): probing the real ones
        // would make HAProxy open, and drop, a connection to the gateway.
        var ready = FreePort();
        config.AppendLine("frontend ready")
            .AppendLine($"  bind 127.0.0.1:{ready}")
            .AppendLine("  tcp-request connection reject");
        var path = Path.Combine(directory, "haproxy.cfg");
        await File.WriteAllTextAsync(path, config.ToString());

        var info = new ProcessStartInfo(Find()!)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add("-db"); // foreground
        info.ArgumentList.Add("-f");
        info.ArgumentList.Add(path);
        var haproxy = new Haproxy(Process.Start(info)!, directory, frontends);
        try
        {
            await Retry.Eventually(async () =>
            {
                if (haproxy._process.HasExited)
                {
                    Assert.Fail($"haproxy exited with {haproxy._process.ExitCode}: {await haproxy._stderr}");
                }
                using var probe = new TcpClient();
                await probe.ConnectAsync(IPAddress.Loopback, ready);
            }, TimeSpan.FromSeconds(10));
        }
        catch
        {
            await haproxy.DisposeAsync();
            throw;
        }
        return haproxy;
    }

    private static int FreePort()
    {
        // HAProxy needs a port number up front: one the system just handed out and took back.
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill();
        }
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await _process.WaitForExitAsync(timeout.Token);
        _process.Dispose();
        Directory.Delete(_directory, recursive: true);
    }
}

/// <summary>
/// One TCP frontend: new connections go to <paramref name="Servers"/> (gateway listeners) by <paramref name="Balance"/>,
/// each opened with <paramref name="ServerOptions"/> (<c>send-proxy-v2</c>...). HAProxy checks no server's health, so
/// <c>roundrobin</c> hands consecutive connections to consecutive servers.
/// </summary>
public sealed record HaproxyFrontend(string Name, IReadOnlyList<Uri> Servers, string ServerOptions, string Balance = "roundrobin");

/// <summary>
/// A fact that needs HAProxy: reported as skipped, with the reason, where it is not installed; under CI (<c>CI=true</c>,
/// where <c>.ci/run</c> installs it) never skipped, so a missing HAProxy fails it.
/// </summary>
public sealed class HaproxyFactAttribute : FactAttribute
{
    public HaproxyFactAttribute()
    {
        var required = string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);
        if (!required && Haproxy.Find() is null)
        {
            Skip = "haproxy not installed: skipped (Debian package 'haproxy'; CI=true makes it required)";
        }
    }
}
