using System.Net;
using System.Net.Sockets;

namespace Gateway.Tests.Infrastructure;

/// <summary>
/// A loopback port that refuses connections: bound, never listening, and held until disposed. Held rather than closed
/// so that no listener another test binds to port 0 in parallel can be given it (a bound socket without
/// SO_REUSEADDR conflicts with every other bind of its port), while a SYN to it still gets a reset.
/// </summary>
public sealed class RefusingPort : IDisposable
{
    private readonly Socket _socket;

    public RefusingPort()
    {
        _socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        _socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, false);
        _socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        Address = new Uri($"http://127.0.0.1:{((IPEndPoint)_socket.LocalEndPoint!).Port}/");
    }

    /// <summary>http://127.0.0.1:PORT/</summary>
    public Uri Address { get; }

    public void Dispose() => _socket.Dispose();
}
