namespace Gateway.Listeners;

/// <summary>
/// Every proxied WebSocket holds two descriptors (the client's socket and the backend's), so the process's open-file
/// limit caps the tunnels the gateway can carry. The budget admits a new tunnel only while both its descriptors fit
/// beside what the process already holds (assemblies, listeners, logs) and a margin for work in flight (handshakes
/// not yet upgraded, plain HTTP, assemblies loaded later): past it, a handshake is refused with 503 before a backend
/// connection is opened. Running out instead fails accept() and connect() with EMFILE, which turns into a 502 and a
/// stack trace per connection at best and, when the runtime itself needs a file (a lazily loaded assembly), worse.
/// </summary>
internal sealed partial class FileDescriptorLimit
{
    private readonly ILogger _logger;
    private int _open;
    private long _nextWarningAt;
    private int _refusedSinceWarning;

    public FileDescriptorLimit(long? limit, int inUse, ILogger logger)
    {
        _logger = logger;
        Limit = limit;
        InUseAtStart = inUse;
        if (limit is not { } known || known >= int.MaxValue)
        {
            Capacity = int.MaxValue;
            return;
        }
        Margin = (int)Math.Max(256, known / 50);
        Capacity = (int)Math.Max(0, (known - inUse - Margin) / 2);
    }

    /// <summary>The soft open-file limit, or null where it is unknown (not Linux) or unlimited.</summary>
    public long? Limit { get; }

    /// <summary>Descriptors the process held when the budget was made.</summary>
    public int InUseAtStart { get; }

    /// <summary>Descriptors left for work in flight.</summary>
    public int Margin { get; }

    /// <summary>How many tunnels may be open at once.</summary>
    public int Capacity { get; }

    /// <summary>Tunnels open now.</summary>
    public int Open => Volatile.Read(ref _open);

    /// <summary>The process's own limit and the descriptors it holds now.</summary>
    public static FileDescriptorLimit FromProcess(ILogger logger)
    {
        var limit = ReadLimit();
        int inUse = 0;
        try
        {
            inUse = Directory.EnumerateFileSystemEntries("/proc/self/fd").Count();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }
        return new FileDescriptorLimit(limit == long.MaxValue ? null : limit, inUse, logger);
    }

    /// <summary>Takes room for one tunnel; false (and a throttled warning) when there is none.</summary>
    public bool TryEnter()
    {
        if (Interlocked.Increment(ref _open) <= Capacity)
        {
            return true;
        }
        Interlocked.Decrement(ref _open);
        WarnThrottled();
        return false;
    }

    public void Exit() => Interlocked.Decrement(ref _open);

    public void LogStartup()
    {
        if (Limit is { } limit)
        {
            LimitAtStartup(_logger, limit, Capacity, InUseAtStart, Margin);
        }
    }

    private void WarnThrottled()
    {
        Interlocked.Increment(ref _refusedSinceWarning);
        var now = Environment.TickCount64;
        var next = Volatile.Read(ref _nextWarningAt);
        if (now >= next && Interlocked.CompareExchange(ref _nextWarningAt, now + 10_000, next) == next)
        {
            AtLimit(_logger, Capacity, Limit ?? 0, Interlocked.Exchange(ref _refusedSinceWarning, 0));
        }
    }

    /// <summary>The soft open-file limit from /proc/self/limits (long.MaxValue for unlimited), or null where there is none.</summary>
    public static long? ReadLimit()
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

    [LoggerMessage(EventId = 150, Level = LogLevel.Information,
        Message = "Open-file limit {Limit}: room for {Capacity} proxied WebSockets (two descriptors each; {InUse} in use at startup, {Margin} kept for work in flight); more are refused with 503. Raise it with ulimit -n or LimitNOFILE")]
    private static partial void LimitAtStartup(ILogger logger, long limit, int capacity, int inUse, int margin);

    [LoggerMessage(EventId = 151, Level = LogLevel.Warning,
        Message = "At the open-file limit: {Capacity} WebSockets open (limit {Limit}); refused {Refused} handshakes with 503 since the last warning. Raise ulimit -n or add gateway instances")]
    private static partial void AtLimit(ILogger logger, int capacity, long limit, int refused);
}
