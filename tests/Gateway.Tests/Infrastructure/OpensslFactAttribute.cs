namespace Gateway.Tests.Infrastructure;

/// <summary>
/// A fact that drives the <c>openssl</c> command-line client: reported as skipped, with the reason, where it is not on
/// the PATH (a machine with only the .NET SDK); under CI (<c>CI=true</c>, where <c>.ci/run</c> installs it) never skipped.
/// </summary>
public sealed class OpensslFactAttribute : FactAttribute
{
    public OpensslFactAttribute()
    {
        var required = string.Equals(Environment.GetEnvironmentVariable("CI"), "true", StringComparison.OrdinalIgnoreCase);
        if (!required && !OnPath("openssl"))
        {
            Skip = "openssl not installed: skipped (Debian package 'openssl'; CI=true makes it required)";
        }
    }

    private static bool OnPath(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? string.Empty).Split(':', StringSplitOptions.RemoveEmptyEntries)
            .Any(directory => File.Exists(Path.Combine(directory, tool)));
}
