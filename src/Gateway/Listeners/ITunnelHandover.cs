namespace Gateway.Listeners;

/// <summary>
/// A request feature: whoever upgraded the request hands over the task that relays the tunnel from the 101 on, and the
/// middleware that ran the handshake unwinds at once (its frames are not kept for the tunnel's life). Offered by the
/// lean HTTP/1.1 path, where the request itself ends at the 101 and the connection lives on with the tunnel
/// (<see cref="EndsRequest"/>), and by <see cref="TunnelHoldingMiddleware"/> for Kestrel's requests (HTTP/1.1 and
/// HTTP/2), where the request must last as long as its tunnel, so the outermost middleware waits for it.
/// </summary>
internal interface ITunnelHandover
{
    /// <summary>
    /// True when the request ends at the 101 and only the connection goes on: the tunnel must then not reach the
    /// request's context, only the connection (its lifetime feature).
    /// </summary>
    bool EndsRequest { get; }

    /// <summary>Keeps the connection (and, where <see cref="EndsRequest"/> is false, the request) until <paramref name="tunnel"/> completes; it must not fault.</summary>
    void Hold(Task tunnel);
}
