using System.Diagnostics;

namespace Gateway.Tests.Infrastructure;

/// <summary>
/// Prometheus's own checker, <c>promtool check metrics</c> (Debian package <c>prometheus</c>), where it is installed.
/// The suite must pass with only the .NET SDK, so tests that need it are <see cref="PromtoolFactAttribute"/>s,
/// skipped without it unless <see cref="RequireVariable"/> is 1 (as in .ci/run) or CI=true.
/// </summary>
public static class Promtool
{
    /// <summary>Set to 1 to fail, not skip, when promtool cannot be found.</summary>
    public const string RequireVariable = "GATEWAY_TESTS_REQUIRE_PROMTOOL";

    /// <summary>The promtool to use instead of the one on PATH; empty, or a path that does not exist, means none.</summary>
    public const string PathVariable = "GATEWAY_TESTS_PROMTOOL";

    /// <summary>In CI (<c>CI=true</c>, which .ci/run's caller sets) or when asked by name: a missing promtool fails.</summary>
    public static bool Required => Environment.GetEnvironmentVariable(RequireVariable) == "1"
        || string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);

    /// <summary>The executable's path, or null when there is none.</summary>
    public static string? Find()
    {
        if (Environment.GetEnvironmentVariable(PathVariable) is { } overridden)
        {
            return File.Exists(overridden) ? overridden : null;
        }
        foreach (var directory in (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries))
        {
            var candidate = Path.Combine(directory, "promtool");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }
        return null;
    }

    /// <summary>The path of promtool; fails the test when there is none (a skipped test never gets here).</summary>
    public static string Require()
    {
        var path = Find();
        Assert.True(path is not null, $"promtool not found (PATH, or {PathVariable}; Debian package 'prometheus') and {RequireVariable}=1 asks for it");
        return path!;
    }

    /// <summary>Runs <c>promtool check metrics</c> on <paramref name="exposition"/>: its exit code (0 = valid) and what it printed.</summary>
    public static async Task<(int ExitCode, string Output)> CheckMetricsAsync(string promtool, string exposition)
    {
        var info = new ProcessStartInfo(promtool, "check metrics")
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var process = Process.Start(info)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        await process.StandardInput.WriteAsync(exposition);
        process.StandardInput.Close();
        try
        {
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        }
        catch (TimeoutException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }
        return (process.ExitCode, (await stdout + await stderr).Trim());
    }
}
