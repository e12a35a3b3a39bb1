using System.Net.Sockets;
using Gateway.Listeners;

namespace Gateway.Warmup;

/// <summary>
/// Opens the warm-up's connections to listeners that expect a PROXY protocol header with a v2 LOCAL header, the form a
/// balancer's own connections (health checks) take: the gateway accepts it and keeps the connection's real (loopback)
/// address. Without it the warm-up's sessions on such a listener would be closed and counted as rejected.
/// </summary>
internal static class LocalProxyHeaderConnector
{
    /// <summary>A ConnectCallback for SocketsHttpHandler, or null (the handler's own connect) when no listener needs a header.</summary>
    public static Func<SocketsHttpConnectionContext, CancellationToken, ValueTask<Stream>>? For(IReadOnlySet<int> ports)
    {
        if (ports.Count == 0)
        {
            return null;
        }
        return async (context, cancellationToken) =>
        {
            var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                await socket.ConnectAsync(context.DnsEndPoint, cancellationToken);
                if (ports.Contains(context.DnsEndPoint.Port))
                {
                    await socket.SendAsync(ProxyProtocolV2.LocalHeader.ToArray(), cancellationToken);
                }
                return new NetworkStream(socket, ownsSocket: true);
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        };
    }
}
