namespace Gateway.Listeners;

/// <summary>
/// A request feature of the lean HTTP/1.1 path: the request may end at the 101 while its connection lives on. Whoever
/// upgraded the connection hands over the task that owns it from then on; the connection ends when that task does, and
/// nothing of the request (its context, its features, the middleware that ran it) stays reachable meanwhile. Kestrel's
/// own requests do not offer it: there the upgraded connection ends with its request.
/// </summary>
internal interface ITunnelHandover
{
    /// <summary>Keeps the connection open until <paramref name="tunnel"/> completes (it must not fault).</summary>
    void Hold(Task tunnel);
}
