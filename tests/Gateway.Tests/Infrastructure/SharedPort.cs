using System.Net;
using System.Net.Sockets;

namespace Gateway.Tests.Infrastructure;

/// <summary>
/// A loopback port for gateways with <c>ReusePort</c>: held by a socket of the test's own with SO_REUSEPORT, so
/// they can bind it too and nothing else can (no other test's port 0 and no outgoing connection is given it).
/// Bound only, it takes no connections; <paramref name="listen"/> makes it a member of the port's group that
/// accepts nothing, like a stuck process.
/// </summary>
public sealed class SharedPort : IDisposable
{
    private readonly Socket _socket;

    public SharedPort(bool listen = false)
    {
        _socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _socket.SetRawSocketOption(1, 15, BitConverter.GetBytes(1)); // SOL_SOCKET, SO_REUSEPORT (Linux)
        _socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        if (listen)
        {
            _socket.Listen(512);
        }
        Port = ((IPEndPoint)_socket.LocalEndPoint!).Port;
    }

    public int Port { get; }

    /// <summary>True when the kernel has handed this socket a connection (it waits in the accept queue): listening only.</summary>
    public bool HasPendingConnection => _socket.Poll(0, SelectMode.SelectRead);

    public void Dispose() => _socket.Dispose();
}
