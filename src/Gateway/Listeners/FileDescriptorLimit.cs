namespace Gateway.Listeners;

/// <summary>
/// Every proxied WebSocket holds two descriptors (the client's socket and the backend's), so the process's open-file
/// limit caps the connections the gateway can carry; it is said at startup so operators see the ceiling before they hit it.
/// </summary>
public static partial class FileDescriptorLimit
{
    /// <summary>Descriptors kept for listeners, logs, the runtime and health probes.</summary>
    private const long Reserved = 100;

    /// <summary>The soft open-file limit from /proc/self/limits, or null where there is none (not Linux).</summary>
    public static long? Read()
    {
        try
        {
            foreach (var line in File.ReadLines("/proc/self/limits"))
            {
                if (line.StartsWith("Max open files", StringComparison.Ordinal))
                {
                    var fields = line["Max open files".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    return fields[0] == "unlimited" ? long.MaxValue : long.Parse(fields[0], System.Globalization.CultureInfo.InvariantCulture);
                }
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException)
        {
        }
        return null;
    }

    public static void Log(ILogger logger)
    {
        if (Read() is { } limit && limit != long.MaxValue)
        {
            Limit(logger, limit, Math.Max(0, (limit - Reserved) / 2));
        }
    }

    [LoggerMessage(EventId = 150, Level = LogLevel.Information,
        Message = "Open-file limit {Limit}: room for about {Connections} proxied WebSockets (two descriptors each); raise it with ulimit -n or LimitNOFILE")]
    private static partial void Limit(ILogger logger, long limit, long connections);
}
