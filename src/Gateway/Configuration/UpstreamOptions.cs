namespace Gateway.Configuration;

/// <summary><c>Gateway:Upstream</c>: how the gateway opens its own connections to backends.</summary>
internal sealed class UpstreamOptions
{
    /// <summary>
    /// Local addresses the backend leg of a WebSocket is opened from, in turn. Empty (the default): the kernel chooses.
    /// Each source address has its own ~28,000 ephemeral ports per backend address and port, so N of them carry N times
    /// as many tunnels to one backend.
    /// </summary>
    public List<string> SourceAddresses { get; set; } = new();
}
