using System.IO.Pipelines;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Gateway.Listeners;

/// <summary>
/// Kestrel connection middleware for a listener behind an L4 balancer (AWS NLB, HAProxy in TCP mode): every connection
/// must open with a PROXY protocol header, which it reads off the transport before TLS or HTTP see a byte. The client
/// address the header names becomes the connection's remote endpoint, so Kestrel's IHttpConnectionFeature, the
/// per-client limits, YARP's X-Forwarded-For and the logs all see the client instead of the balancer. Anything else
/// (no header, a bad one, a partial one, none within the timeout) closes the connection, is counted and logged. Only
/// peers in the listener's trusted networks (the balancers) may send one: any other peer is closed before a byte is read.
/// </summary>
internal sealed class ProxyProtocolMiddleware
{
    private readonly ConnectionDelegate _next;
    private readonly string _listener;
    private readonly TimeSpan _timeout;
    private readonly TimeProvider _time;
    private readonly ProxyProtocolReporter _reporter;
    private readonly ProxyProtocolPeers _peers;

    public ProxyProtocolMiddleware(ConnectionDelegate next, string listener, TimeSpan timeout, TimeProvider time, ProxyProtocolReporter reporter,
        ProxyProtocolPeers peers)
    {
        _peers = peers;
        _next = next;
        _listener = listener;
        _timeout = timeout;
        _time = time;
        _reporter = reporter;
    }

    /// <summary>
    /// Adds the middleware to <paramref name="endpoint"/>: call it before <c>UseHttps</c>, since the header comes before
    /// the TLS ClientHello. Its services are taken when Kestrel builds the endpoint, after the host has replaced any.
    /// </summary>
    public static void Use(ListenOptions endpoint, string listener, TimeSpan timeout, ProxyProtocolPeers peers)
    {
        endpoint.Use(next =>
        {
            var services = endpoint.ApplicationServices;
            var reporter = services.GetRequiredService<ProxyProtocolReporter>();
            reporter.ListenerStarted(listener, timeout, peers.Description);
            return new ProxyProtocolMiddleware(next, listener, timeout, services.GetRequiredService<TimeProvider>(), reporter, peers).OnConnectionAsync;
        });
    }

    public async Task OnConnectionAsync(ConnectionContext connection)
    {
        var trust = _peers.Of(connection.RemoteEndPoint);
        if (trust == PeerTrust.None)
        {
            // Returning without calling the rest of the pipeline closes the connection.
            Reject(connection, ProxyProtocolRejection.Untrusted, _peers.NotTrustedDetail);
            return;
        }
        var header = await ReadHeaderAsync(connection);
        if (header is null)
        {
            return;
        }
        if (trust == PeerTrust.LocalOnly && header.Source is not null)
        {
            Reject(connection, ProxyProtocolRejection.Untrusted, _peers.NotTrustedDetail);
            return;
        }
        if (header.Source is { } client)
        {
            // Kestrel builds each HTTP connection's IHttpConnectionFeature from this when the HTTP layer starts.
            connection.RemoteEndPoint = client;
        }
        await _next(connection);
    }

    /// <summary>
    /// Reads the header and consumes exactly its bytes: what follows (a ClientHello, a request) stays in the pipe for the
    /// next layer. Parses again only once enough bytes for a decision have arrived; bounded by the header's size and the timeout.
    /// </summary>
    private async Task<ProxyHeader?> ReadHeaderAsync(ConnectionContext connection)
    {
        var input = connection.Transport.Input;
        using var timeout = new CancellationTokenSource(_timeout, _time);
        long needed = 1;
        long received = 0;
        try
        {
            while (true)
            {
                var read = await input.ReadAsync(timeout.Token);
                var buffer = read.Buffer;
                received = buffer.Length;
                if (buffer.Length >= needed)
                {
                    var result = ProxyProtocolParser.Parse(buffer);
                    switch (result.Status)
                    {
                        case ProxyParseStatus.Complete:
                            input.AdvanceTo(buffer.GetPosition(result.Length));
                            return result.Header;
                        case ProxyParseStatus.Rejected:
                            input.AdvanceTo(buffer.End);
                            Reject(connection, result.Rejection, result.Detail!);
                            return null;
                        default:
                            needed = result.Length;
                            break;
                    }
                }
                if (read.IsCompleted || read.IsCanceled)
                {
                    input.AdvanceTo(buffer.End);
                    Ended(connection, received);
                    return null;
                }
                input.AdvanceTo(buffer.Start, buffer.End);
            }
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            Reject(connection, ProxyProtocolRejection.Timeout, received == 0 ? "nothing received" : "a partial header");
            return null;
        }
        catch (IOException)
        {
            // A reset (ConnectionResetException) is an end too.
            Ended(connection, received);
            return null;
        }
        catch (ConnectionAbortedException)
        {
            // The server closed it (shutdown): nothing the peer did.
            return null;
        }
    }

    private void Ended(ConnectionContext connection, long received)
    {
        if (received == 0)
        {
            Reject(connection, ProxyProtocolRejection.Empty, "closed before sending anything");
        }
        else
        {
            Reject(connection, ProxyProtocolRejection.Truncated, "closed in the middle of a header");
        }
    }

    private void Reject(ConnectionContext connection, ProxyProtocolRejection reason, string detail) =>
        _reporter.Rejected(_listener, reason, connection.RemoteEndPoint, detail);
}
