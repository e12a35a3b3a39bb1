namespace Gateway.Configuration;

/// <summary>Finds the configuration file: <c>--config PATH</c>, then <c>GATEWAY_CONFIG</c>, then <c>config/gateway.json</c>.</summary>
internal static class ConfigFileLocator
{
    public const string EnvironmentVariable = "GATEWAY_CONFIG";
    public const string DefaultPath = "config/gateway.json";

    public static string Locate(string[] args, Func<string, string?>? getEnvironment = null)
    {
        getEnvironment ??= Environment.GetEnvironmentVariable;
        string? path = null;
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] is "--config" or "-c")
            {
                if (i + 1 >= args.Length)
                {
                    throw new GatewayStartupException("--config needs a file path", GatewayStartupException.ConfigurationExitCode);
                }
                path = args[i + 1];
            }
            else if (args[i].StartsWith("--config=", StringComparison.Ordinal))
            {
                path = args[i]["--config=".Length..];
            }
        }

        path ??= getEnvironment(EnvironmentVariable);
        if (string.IsNullOrWhiteSpace(path))
        {
            path = DefaultPath;
        }

        var full = Path.GetFullPath(path);
        if (!File.Exists(full))
        {
            throw new GatewayStartupException(
                $"{path}: configuration file not found (give one with --config PATH or {EnvironmentVariable})",
                GatewayStartupException.ConfigurationExitCode);
        }
        return full;
    }

    /// <summary>The arguments minus the ones this locator consumed, so they don't leak into IConfiguration.</summary>
    public static string[] RemoveConfigArguments(string[] args)
    {
        var rest = new List<string>(args.Length);
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] is "--config" or "-c")
            {
                i++;
                continue;
            }
            if (args[i].StartsWith("--config=", StringComparison.Ordinal))
            {
                continue;
            }
            rest.Add(args[i]);
        }
        return rest.ToArray();
    }
}
