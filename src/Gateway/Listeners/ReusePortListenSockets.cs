using System.Net;
using System.Net.Sockets;
using Gateway.Configuration;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;

namespace Gateway.Listeners;

/// <summary>
/// Kestrel's listen sockets, with SO_REUSEPORT on the public listeners' ports: several gateway processes then bind
/// the same ports and the kernel spreads new connections over their listen sockets (by a hash of each connection's
/// addresses and ports). Every socket of such a group must set the option, so a process that does not (an older
/// build, or this one with <c>ReusePort</c> off) still fails to bind, as it should. The admin listener never shares
/// its port: each process answers its own health checks and metrics.
/// </summary>
internal sealed class ReusePortListenSockets
{
    // <asm-generic/socket.h>: SOL_SOCKET 1, SO_REUSEPORT 15 (Linux 3.9+). Other systems number it differently.
    private const int SolSocket = 1;
    private const int SoReusePort = 15;

    private readonly HashSet<int> _sharedPorts;

    /// <param name="sharedPorts">The public listeners' ports; port 0 (the system chooses) is never shared.</param>
    public ReusePortListenSockets(IEnumerable<int> sharedPorts)
    {
        _sharedPorts = sharedPorts.Where(p => p != 0).ToHashSet();
    }

    public static ReusePortListenSockets For(GatewayOptions options) =>
        new(options.Listeners.Values.Select(l => l.Port ?? 0));

    /// <summary>Kestrel's <c>CreateBoundListenSocket</c>: its default, plus SO_REUSEPORT before Bind on a shared port.</summary>
    public Socket CreateBoundListenSocket(EndPoint endPoint)
    {
        if (endPoint is not IPEndPoint ip || !_sharedPorts.Contains(ip.Port))
        {
            return SocketTransportOptions.CreateDefaultBoundListenSocket(endPoint);
        }
        var socket = new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            // As Kestrel's default does: its "any address" endpoint is IPv6Any, and means IPv4 as well.
            if (ip.Address.Equals(IPAddress.IPv6Any))
            {
                socket.DualMode = true;
            }
            socket.SetRawSocketOption(SolSocket, SoReusePort, BitConverter.GetBytes(1));
            socket.Bind(ip);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>The rules <c>ReusePort</c> adds to the configuration; throws naming the key.</summary>
    internal static void Validate(GatewayOptions options)
    {
        if (!options.ReusePort)
        {
            return;
        }
        if (!OperatingSystem.IsLinux())
        {
            throw new GatewayConfigurationException($"{GatewayOptions.SectionName}:{nameof(GatewayOptions.ReusePort)}", "is supported on Linux only");
        }
        // Sharing the admin port would send one process's health checks and scrapes to another at random.
        if (options.Admin.Enabled && options.Admin.Port != 0)
        {
            foreach (var (name, listener) in options.Listeners)
            {
                if (listener.Port == options.Admin.Port)
                {
                    throw new GatewayConfigurationException($"{GatewayOptions.SectionName}:Admin:Port",
                        $"{options.Admin.Port} is also the port of listener '{name}'; with ReusePort each process needs an admin port of its own (Gateway__Admin__Port in its environment)");
                }
            }
        }
    }
}
