using System.Net;
using System.Net.Sockets;

namespace Gateway.Proxy;

/// <summary>Binds a backend socket to a source address, leaving the port to connect().</summary>
internal static class SourceBinding
{
    // <linux/in.h>: IP_BIND_ADDRESS_NO_PORT (Linux 4.2+), at IPPROTO_IP (0); IPv6 sockets honour it too.
    private const int IpProtoIp = 0;
    private const int IpBindAddressNoPort = 24;
    private static readonly byte[] On = BitConverter.GetBytes(1);

    /// <summary>
    /// Binds <paramref name="socket"/> to <paramref name="address"/> with port 0. With IP_BIND_ADDRESS_NO_PORT the
    /// port is chosen at connect() for the whole 4-tuple, so each source address has the ephemeral range to itself
    /// per destination; a plain bind would choose a port unique to the address alone, and all destinations together
    /// would share one range. Elsewhere (or on an old kernel) the plain bind is what happens.
    /// </summary>
    public static void Bind(Socket socket, IPAddress address)
    {
        if (OperatingSystem.IsLinux())
        {
            try
            {
                socket.SetRawSocketOption(IpProtoIp, IpBindAddressNoPort, On);
            }
            catch (SocketException)
            {
                // ENOPROTOOPT before Linux 4.2: the bind below then takes a port, with fewer connections possible.
            }
        }
        socket.Bind(new IPEndPoint(address, 0));
    }

    /// <summary>
    /// The errors that mean the gateway itself has no local port (or no longer the source address) for this
    /// destination: EADDRNOTAVAIL from connect() or bind(), EADDRINUSE from a bind that had to choose a port.
    /// Nothing reached the destination, and it is not the destination's fault.
    /// </summary>
    public static bool IsLocalExhaustion(SocketError error) =>
        error is SocketError.AddressNotAvailable or SocketError.AddressAlreadyInUse;
}
