namespace Gateway.Proxy;

/// <summary>How far <see cref="ConnectRetryMiddleware"/> goes: fixed bounds, not settings (see the README's proxy section).</summary>
internal sealed class ConnectRetryOptions
{
    /// <summary>Attempts per request, the first included: two dead destinations in a row cost a client nothing.</summary>
    public int MaxAttempts { get; init; } = 3;

    /// <summary>
    /// No new attempt starts later than this after the first began. Above the connect timeout (15 s, YARP's and
    /// UpgradeConnector's), so a connect that timed out is still followed by one more attempt, but not by a second
    /// that could take as long: a client waits at most about two connect timeouts. Refused and unreachable
    /// destinations fail in milliseconds.
    /// </summary>
    public TimeSpan Deadline { get; init; } = TimeSpan.FromSeconds(20);

    /// <summary>How long a destination marked unhealthy stays out when its cluster sets no ReactivationPeriod (YARP's default).</summary>
    public TimeSpan DefaultReactivationPeriod { get; init; } = TimeSpan.FromSeconds(60);
}
