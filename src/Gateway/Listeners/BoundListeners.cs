using System.Net;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Gateway.Listeners;

/// <summary>
/// The listeners as Kestrel bound them (port 0 becomes the port the system chose), for the startup log
/// and for whoever runs the gateway in-process.
/// </summary>
internal sealed class BoundListeners
{
    private readonly List<(GatewayListener Listener, ListenOptions Options)> _listeners = new();

    internal void Add(GatewayListener listener, ListenOptions options) => _listeners.Add((listener, options));

    /// <summary>The bound endpoint of the listener named <paramref name="name"/> (<c>admin</c> for the admin listener).</summary>
    public IPEndPoint EndPoint(string name)
    {
        foreach (var (listener, options) in _listeners)
        {
            if (!listener.WarmupOnly && string.Equals(listener.Name, name, StringComparison.OrdinalIgnoreCase))
            {
                return options.IPEndPoint ?? throw new InvalidOperationException($"listener '{name}' is not an IP listener");
            }
        }
        throw new KeyNotFoundException($"no listener named '{name}'");
    }

    public IEnumerable<(GatewayListener Listener, IPEndPoint? EndPoint)> All =>
        _listeners.Select(l => (l.Listener, l.Options.IPEndPoint));
}
