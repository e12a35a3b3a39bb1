namespace Gateway.Listeners;

/// <summary>
/// Which configured listener accepted a connection. Set once per connection as a connection feature
/// (Kestrel serves connection features through every request's feature collection).
/// </summary>
internal sealed class GatewayListener
{
    public GatewayListener(string name, string configKey, bool tls, bool isAdmin)
    {
        Name = name;
        ConfigKey = configKey;
        Tls = tls;
        IsAdmin = isAdmin;
    }

    public string Name { get; }

    public string ConfigKey { get; }

    public bool Tls { get; }

    public bool IsAdmin { get; }

    /// <summary>
    /// A private loopback twin of a public listener that shares its port with other processes (<c>ReusePort</c>): the
    /// kernel may hand a connection to the shared port to any of them, so the warm-up uses this one, which is its own.
    /// </summary>
    public bool WarmupOnly { get; init; }

    /// <summary>The WebSocket scheme clients use on this listener.</summary>
    public string WebSocketScheme => Tls ? "wss" : "ws";
}
