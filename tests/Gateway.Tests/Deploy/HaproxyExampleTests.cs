using System.Diagnostics;
using Gateway.Tests.Listeners;

namespace Gateway.Tests.Deploy;

/// <summary>deploy/haproxy/replicas.cfg, the README's example balancer for a fleet, is a configuration HAProxy accepts.</summary>
public sealed class HaproxyExampleTests
{
    [HaproxyFact]
    public async Task The_fleet_example_passes_HAProxys_own_check_and_sends_PROXY_v2_to_every_replica()
    {
        var path = Path.Combine(RepositoryRoot(), "deploy", "haproxy", "replicas.cfg");
        // -c checks the file and exits: nothing is bound, no server is contacted.
        var info = new ProcessStartInfo(Haproxy.Find()!) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add("-f");
        info.ArgumentList.Add(path);
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await process.WaitForExitAsync(timeout.Token);
        Assert.True(process.ExitCode == 0, $"haproxy -c: exit {process.ExitCode}: {await stdout}{await stderr}");

        var lines = await File.ReadAllLinesAsync(path);
        var backends = lines.Count(l => l.StartsWith("backend ", StringComparison.Ordinal));
        Assert.Equal(backends, lines.Count(l => l.Trim().StartsWith("default-server send-proxy-v2 ", StringComparison.Ordinal)));
        Assert.Equal(backends, lines.Count(l => l.Contains("uri /readyz", StringComparison.Ordinal)));
    }

    private static string RepositoryRoot()
    {
        var directory = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(directory, "Gateway.sln")))
        {
            directory = Path.GetDirectoryName(directory) ?? throw new InvalidOperationException("repository root not found");
        }
        return directory;
    }
}
