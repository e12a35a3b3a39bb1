namespace Gateway.Configuration;

/// <summary>
/// A configuration mistake, reported as one line naming the file, the key and what is wrong.
/// </summary>
internal sealed class GatewayConfigurationException : Exception
{
    public GatewayConfigurationException(string key, string message, Exception? inner = null, bool consequence = false)
        : base($"{key}: {message}", inner)
    {
        Key = key;
        Problem = message;
        IsConsequence = consequence;
    }

    /// <summary>True when this error may only follow from another one (a route to a cluster that failed validation).</summary>
    public bool IsConsequence { get; }

    public string Key { get; }

    public string Problem { get; }
}

/// <summary>Why the gateway could not start, already phrased for the operator; <see cref="ExitCode"/> tells the kind.</summary>
public sealed class GatewayStartupException : Exception
{
    public const int ConfigurationExitCode = 2;
    public const int ListenerExitCode = 3;

    public GatewayStartupException(string message, int exitCode, Exception? inner = null) : base(message, inner)
    {
        ExitCode = exitCode;
    }

    public int ExitCode { get; }
}
