using System.Diagnostics;

namespace Gateway.Tests.Infrastructure;

/// <summary>Runs the built gateway program as its own process, as an operator would.</summary>
public static class GatewayProcess
{
    public static async Task<(int ExitCode, string StdOut, string StdErr)> RunAsync(TimeSpan timeout, params string[] args) =>
        await RunAsync(timeout, new Dictionary<string, string>(), args);

    /// <param name="environment">Variables added to the process's environment (<c>Gateway__Admin__Port</c>...).</param>
    public static async Task<(int ExitCode, string StdOut, string StdErr)> RunAsync(TimeSpan timeout, IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        using var process = Process.Start(StartInfo(environment, args))!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cancel = new CancellationTokenSource(timeout);
        try
        {
            await process.WaitForExitAsync(cancel.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw new TimeoutException($"the gateway did not exit within {timeout}: {await stdout}{await stderr}");
        }
        return (process.ExitCode, await stdout, await stderr);
    }

    /// <summary>Starts the gateway and leaves it running: the caller waits for its log lines and stops it.</summary>
    public static RunningGatewayProcess Start(IReadOnlyDictionary<string, string> environment, params string[] args) =>
        new(Process.Start(StartInfo(environment, args))!);

    private static ProcessStartInfo StartInfo(IReadOnlyDictionary<string, string> environment, string[] args)
    {
        var info = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        info.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "Gateway.dll"));
        foreach (var arg in args)
        {
            info.ArgumentList.Add(arg);
        }
        info.Environment.Remove("GATEWAY_CONFIG");
        // The in-process gateways of this test run set it in this process's environment; the child decides for itself.
        info.Environment.Remove("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS");
        foreach (var (name, value) in environment)
        {
            info.Environment[name] = value;
        }
        return info;
    }
}
