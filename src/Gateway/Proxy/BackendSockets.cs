using System.Net;
using System.Net.Sockets;

namespace Gateway.Proxy;

/// <summary>
/// Opens the TCP connection to a backend for <see cref="UpgradeConnector"/>: from the configured source addresses in
/// turn when there are any, else wherever the kernel chooses. Connect failures become the HttpRequestExceptions
/// SocketsHttpHandler would throw (so the connect retry sees them as such); a lack of local ports becomes
/// <see cref="LocalPortsExhaustedException"/>, which is the gateway's problem and never the destination's.
/// </summary>
internal sealed class BackendSockets(SourceAddresses sources)
{
    public static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(15); // as YARP sets on SocketsHttpHandler

    public SourceAddresses Sources { get; } = sources;

    public async Task<Socket> ConnectAsync(Uri uri, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(ConnectTimeout);
        try
        {
            if (Sources.IsEmpty)
            {
                return await ConnectUnboundAsync(RequestTarget.EndPoint(uri), timeout.Token).ConfigureAwait(false);
            }
            return await ConnectFromSourcesAsync(uri, timeout.Token).ConfigureAwait(false);
        }
        catch (LocalPortsExhaustedException)
        {
            throw;
        }
        catch (Exception ex)
        {
            if (ex is OperationCanceledException && !cancellationToken.IsCancellationRequested)
            {
                throw new HttpRequestException(HttpRequestError.ConnectionError, $"Connecting to {uri.Authority} timed out after {ConnectTimeout.TotalSeconds:0} s", ex);
            }
            if (ex is SocketException socketError)
            {
                // The message names the address, as SocketsHttpHandler's does ("Connection refused (127.0.0.1:5101)").
                throw new HttpRequestException(HttpRequestError.ConnectionError, $"{socketError.Message} ({uri.Authority})", ex);
            }
            throw;
        }
    }

    /// <summary>
    /// The kernel chooses the source address and port. An address literal gets a socket of its own family; a host name a
    /// dual-mode one, which reaches IPv4 and IPv6 alike (at two IPV6_V6ONLY calls more per connect, hence not always).
    /// </summary>
    private static async Task<Socket> ConnectUnboundAsync(EndPoint endPoint, CancellationToken cancellationToken)
    {
        var socket = endPoint is IPEndPoint literal
            ? new Socket(literal.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true }
            : new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(endPoint, cancellationToken).ConfigureAwait(false);
            return socket;
        }
        catch (SocketException ex) when (SourceBinding.IsLocalExhaustion(ex.SocketErrorCode))
        {
            socket.Dispose();
            throw new LocalPortsExhaustedException(ex);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Each address the host has, in order (as a connect to a host name tries them), from the source addresses of its
    /// family: the next in turn first, then the others when it has no port left for this destination.
    /// </summary>
    private async Task<Socket> ConnectFromSourcesAsync(Uri uri, CancellationToken cancellationToken)
    {
        IPAddress[] addresses;
        int port;
        var endPoint = RequestTarget.EndPoint(uri);
        if (endPoint is IPEndPoint literal)
        {
            addresses = [literal.Address];
            port = literal.Port;
        }
        else
        {
            var name = (DnsEndPoint)endPoint;
            addresses = await Dns.GetHostAddressesAsync(name.Host, cancellationToken).ConfigureAwait(false);
            port = name.Port;
        }
        Exception? last = null;
        foreach (var address in addresses)
        {
            var destination = new IPEndPoint(address, port);
            var (sources, start) = Sources.Next(address.AddressFamily);
            try
            {
                if (sources.Length == 0)
                {
                    return await ConnectUnboundAsync(destination, cancellationToken).ConfigureAwait(false);
                }
                return await ConnectFromAsync(sources, start, destination, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is SocketException or LocalPortsExhaustedException)
            {
                last = ex;
            }
        }
        throw last ?? new SocketException((int)SocketError.HostNotFound);
    }

    private static async Task<Socket> ConnectFromAsync(IPAddress[] sources, int start, IPEndPoint destination, CancellationToken cancellationToken)
    {
        SocketException? exhausted = null;
        for (var i = 0; i < sources.Length; i++)
        {
            var socket = new Socket(destination.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            try
            {
                SourceBinding.Bind(socket, sources[(start + i) % sources.Length]);
                await socket.ConnectAsync(destination, cancellationToken).ConfigureAwait(false);
                return socket;
            }
            catch (SocketException ex) when (SourceBinding.IsLocalExhaustion(ex.SocketErrorCode))
            {
                socket.Dispose();
                exhausted = ex;
            }
            catch
            {
                socket.Dispose();
                throw;
            }
        }
        throw new LocalPortsExhaustedException(exhausted!);
    }
}

/// <summary>No source address had a local port left for the destination (or no longer exists): ours, not the backend's.</summary>
internal sealed class LocalPortsExhaustedException(SocketException inner) : Exception(inner.Message, inner);
