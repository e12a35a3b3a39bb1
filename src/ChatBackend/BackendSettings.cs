namespace ChatBackend;

/// <summary>
/// The backend's knobs, read once at startup. Kept in one immutable object so every endpoint sees the
/// same values and tests can change them from the command line (<c>--Instance b1</c>, <c>--KeepAliveSeconds 5</c>).
/// </summary>
internal sealed class BackendSettings
{
    /// <summary>Size limit for chat-room messages; rooms are for chat lines, not bulk data.</summary>
    public const int MaxRoomMessageBytes = 64 * 1024;

    /// <summary>Size limit for /echo, large enough to exercise a proxy with multi-megabyte messages.</summary>
    public const int MaxEchoMessageBytes = 32 * 1024 * 1024;

    private static readonly string[] DefaultSubprotocols = ["chat.v2", "chat.v1"];

    public required string Instance { get; init; }

    /// <summary>Supported subprotocols; the client's preference order decides among them.</summary>
    public required IReadOnlyList<string> Subprotocols { get; init; }

    /// <summary>Zero means the backend never pings on its own, which keeps proxy-transparency tests deterministic.</summary>
    public required TimeSpan KeepAliveInterval { get; init; }

    /// <summary>Outgoing messages a room member may have pending before it is considered too slow.</summary>
    public required int MemberQueueCapacity { get; init; }

    /// <summary>How long a close handshake the backend started may take before the socket is aborted.</summary>
    public required TimeSpan CloseTimeout { get; init; }

    public static BackendSettings FromConfiguration(IConfiguration configuration)
    {
        // Command line and the standard providers win; CHAT_INSTANCE is the container-friendly fallback.
        var instance = NonEmpty(configuration["Instance"])
            ?? NonEmpty(Environment.GetEnvironmentVariable("CHAT_INSTANCE"))
            ?? $"{Environment.MachineName}-{Environment.ProcessId}";

        var subprotocols = configuration.GetSection("Subprotocols").GetChildren()
            .Select(child => child.Value)
            .OfType<string>()
            .Where(value => value.Length > 0)
            .ToArray();

        return new BackendSettings
        {
            Instance = instance,
            Subprotocols = subprotocols.Length > 0 ? subprotocols : DefaultSubprotocols,
            KeepAliveInterval = TimeSpan.FromSeconds(ReadInt(configuration, "KeepAliveSeconds", 0, min: 0)),
            MemberQueueCapacity = ReadInt(configuration, "MemberQueueCapacity", 256, min: 1),
            CloseTimeout = TimeSpan.FromSeconds(ReadInt(configuration, "CloseTimeoutSeconds", 5, min: 1)),
        };
    }

    private static string? NonEmpty(string? value) => string.IsNullOrWhiteSpace(value) ? null : value.Trim();

    private static int ReadInt(IConfiguration configuration, string key, int fallback, int min)
    {
        var raw = configuration[key];
        if (string.IsNullOrWhiteSpace(raw))
        {
            return fallback;
        }

        // A typo in a sample's config should fail loudly at startup rather than silently use a default.
        if (!int.TryParse(raw, System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var value) || value < min)
        {
            throw new InvalidOperationException($"Configuration value '{key}' must be an integer >= {min}, got '{raw}'.");
        }

        return value;
    }
}
