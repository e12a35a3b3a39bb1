using System.Net;
using System.Security.Cryptography;
using System.Text;
using Gateway.Handshake;
using Gateway.Listeners;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.Timeouts;
using Microsoft.AspNetCore.WebUtilities;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Model;

namespace Gateway.Relay;

// The backend's answer: a refusal is passed on as it came (through the route's response transforms); an acceptance
// is checked, turned into the client's 101 (or its HTTP/2 200), and the tunnel relays.
internal sealed partial class TunnelForwarder
{
    /// <summary>RFC 6455 section 1.3: the GUID appended to the key for Sec-WebSocket-Accept.</summary>
    private static readonly byte[] AcceptGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"u8.ToArray();

    /// <summary>
    /// Opens the backend's leg, upgrades the client and hands the relaying tunnel over. Returns true when handed over:
    /// the tunnel then gives back its count, permits and verdict itself; false when there is no tunnel (the handshake
    /// failed or was refused, and the request carries the answer).
    /// </summary>
    private async Task<bool> TunnelAsync(HttpContext context, WebSocketHandshake handshake, RelayTunnel tunnel, IReverseProxyFeature proxy,
        DestinationState destination)
    {
        // Both servers offer the handover: the lean path's exchange, whose request ends at the 101 and whose connection
        // lives on, and TunnelHoldingMiddleware for Kestrel's requests. Checked before the backend is asked for anything.
        var handover = context.Features.Get<ITunnelHandover>()
            ?? throw new InvalidOperationException($"no {nameof(ITunnelHandover)} for a WebSocket handshake: the host runs the pipeline without {nameof(TunnelHoldingMiddleware)}");
        var connection = handover.EndsRequest
            ? context.Features.Get<IConnectionLifetimeFeature>()
                ?? throw new InvalidOperationException($"a request that ends at the 101 has no {nameof(IConnectionLifetimeFeature)} to relay on")
            : null;
        var activityTimeout = proxy.Cluster.Config.HttpRequest?.ActivityTimeout ?? DefaultActivityTimeout;
        Stream backend;
        using (var handshakeTime = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted))
        {
            // The handshake has the cluster's activity timeout to get an answer, as under YARP's forwarder.
            handshakeTime.CancelAfter(activityTimeout);
            var response = await SendHandshakeAsync(context, proxy, destination, handshakeTime.Token);
            if (response is null)
            {
                return false;
            }
            var accepted = await PassAnswerAsync(context, handshake, response, proxy.Route.Transformer, handshakeTime.Token);
            if (accepted is null)
            {
                return false;
            }
            backend = accepted;
            tunnel.AttachBackend(backend, flushWrites: response.Version == HttpVersion.Version20);
        }

        Stream client;
        try
        {
            client = handshake.IsHttp2
                ? await context.Features.Get<IHttpExtendedConnectFeature>()!.AcceptAsync()
                : await context.Features.Get<IHttpUpgradeFeature>()!.UpgradeAsync();
        }
        catch (Exception ex)
        {
            // Kestrel's upgraded-connection limit, a header the server refuses to send, a client gone: nobody else closes
            // the backend's connection, and a client that got nothing yet gets a 502 rather than a 101 leading nowhere.
            await backend.DisposeAsync();
            Fail(context, ForwarderError.UpgradeResponseClient, ex, StatusCodes.Status502BadGateway);
            return false;
        }
        // The route's Timeout is for getting an answer, never for the tunnel (as YARP does after an upgrade).
        context.Features.Get<IHttpRequestTimeoutFeature>()?.DisableTimeout();
        if (!handshake.IsHttp2 && context.Features.Get<IConnectionTransportFeature>()?.Transport is { } transport && client is not ClientTransportStream)
        {
            // Kestrel has flushed the 101: from here its HTTP/1.1 layer only passes bytes, so the relay reads and writes the
            // connection's transport (TLS included) itself.
            client = new ClientTransportStream(transport);
        }

        // The lean path's request ends at the 101: the tunnel then reaches the client through the connection alone.
        var ownsSocket = false;
        if (connection is not null && context.Features.Get<GatewayListener>() is { Tls: false }
            && context.Features.Get<ISocketTakeover>() is { } takeover && await takeover.TakeOverAsync() is var (taken, buffered))
        {
            // Gateway:SocketTakeover: the 101 is on the wire and the transport let go of the socket; the tunnel reads and
            // writes it itself. Bytes the client sent right behind its handshake were already received: they come first.
            client = taken;
            ownsSocket = true;
            Log.SocketTakenOver(_tunnelLogger, tunnel.RouteId, buffered);
        }
        else if (connection is not null && context.Features.Get<GatewayListener>() is { Tls: true }
            && context.Features.Get<ISocketTakeover>() is { } direct && await direct.GoDirectAsync())
        {
            // Under TLS the socket stays the connection's (Kestrel's SslStream is layered over its pipes), but the loops
            // between them stop: the tunnel's reads and writes through TLS reach the socket on its own calls.
            Log.TlsWentDirect(_tunnelLogger, tunnel.RouteId);
        }
        tunnel.Upgraded(client, context, connection, ownsSocket);
        handshake.OutliveRequest();
        // The room's count on its destination (ConsistentHash) lasts as long as the tunnel, not its request.
        var keyLease = context.Features.Get<LoadBalancing.KeyLease>();
        keyLease?.OutliveRequest();
        // The tunnel's loops do not carry the request's ExecutionContext (its logging scopes, a span): captured at every
        // wait, it made each wake-up of a loop switch contexts in and out (ExecutionContext.RunInternal). Nothing in the
        // relay reads it. (The scope objects live on regardless: the connection's own tasks captured the same context.)
        Task relay;
        using (ExecutionContext.SuppressFlow())
        {
            relay = RelayHandedOverAsync(tunnel, handshake, keyLease, proxy.Route.Cluster!, destination, activityTimeout);
        }
        handover.Hold(relay);
        return true;
    }

    /// <summary>
    /// Passes the backend's answer to the client's response. Returns the backend's connection when it accepted the
    /// WebSocket and the client may be upgraded; null when the answer was a refusal (passed on whole) or is refused here.
    /// </summary>
    private async Task<Stream?> PassAnswerAsync(HttpContext context, WebSocketHandshake handshake, HttpResponseMessage response,
        HttpTransformer transformer, CancellationToken cancellationToken)
    {
        var request = response.RequestMessage!;
        var accepted = response.StatusCode == HttpStatusCode.SwitchingProtocols
            || response.StatusCode == HttpStatusCode.OK && request.Method == HttpMethod.Connect && response.Version == HttpVersion.Version20;
        if (accepted && BackendSubprotocolCheck.Violation(response, context.Request) is { } violation)
        {
            // The gate writes the refusal once this returns; the backend's connection is dropped unused.
            response.Dispose();
            context.Response.StatusCode = StatusCodes.Status502BadGateway;
            context.Features.Set(new BackendSubprotocolRefusal(violation));
            return null;
        }

        context.Response.StatusCode = (int)response.StatusCode;
        if (!handshake.IsHttp2 && response.ReasonPhrase != ReasonPhrases.GetReasonPhrase((int)response.StatusCode))
        {
            context.Features.Get<IHttpResponseFeature>()!.ReasonPhrase = response.ReasonPhrase;
        }
        bool passBody;
        try
        {
            // The route's response transforms: the headers, session affinity's cookie, the operator's own.
            passBody = await transformer.TransformResponseAsync(context, response, cancellationToken);
        }
        catch (Exception ex)
        {
            response.Dispose();
            Fail(context, ForwarderError.ResponseHeaders, ex, StatusCodes.Status502BadGateway);
            return null;
        }
        if (!accepted || !passBody)
        {
            if (passBody)
            {
                await PassRefusalBodyAsync(context, response, cancellationToken);
            }
            response.Dispose();
            return null;
        }
        if (!FixUpgradeHeaders(context, handshake, response))
        {
            response.Dispose();
            Fail(context, ForwarderError.ResponseHeaders, new InvalidDataException("the backend's Sec-WebSocket-Accept does not match the key it was sent"),
                StatusCodes.Status502BadGateway);
            return null;
        }
        response.Headers.NonValidated.TryGetValues("Sec-WebSocket-Protocol", out var subprotocol);
        response.Headers.NonValidated.TryGetValues("Sec-WebSocket-Extensions", out var extensions);
        handshake.Accept(subprotocol.Count == 0 ? null : subprotocol.ToString(), extensions.Count == 0 ? default : extensions.ToArray());
        // A 101's content is the connection itself (SocketsHttpHandler's, and UpgradeConnector's, alike).
        return await response.Content.ReadAsStreamAsync(cancellationToken);
    }

    /// <summary>A refusal's body (a 403, a 404, a 426...), passed on; a backend that fails midway leaves the client cut.</summary>
    private async Task PassRefusalBodyAsync(HttpContext context, HttpResponseMessage response, CancellationToken cancellationToken)
    {
        try
        {
            await using var body = await response.Content.ReadAsStreamAsync(cancellationToken);
            await body.CopyToAsync(context.Response.Body, cancellationToken);
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException or OperationCanceledException)
        {
            context.Features.Set<IForwarderErrorFeature>(new ForwarderFailure(ForwarderError.ResponseBodyDestination, ex));
            context.Abort();
        }
    }

    /// <summary>
    /// The upgrade's own fields, which the transforms do not copy (hop by hop), for the client's side of the handshake:
    /// HTTP/1.1 to HTTP/1.1 keeps the backend's Upgrade; an HTTP/2 client gets a 200 with no key proof, after the
    /// gateway checked the backend's against the key it generated (RFC 6455 section 4.1, client requirement 4 of the
    /// response rules); an HTTP/1.1 client of an HTTP/2 backend gets the proof of its own key. False when the backend's
    /// proof is wrong.
    /// </summary>
    private static bool FixUpgradeHeaders(HttpContext context, WebSocketHandshake handshake, HttpResponseMessage response)
    {
        var headers = context.Response.Headers;
        var backendIsHttp2 = response.Version == HttpVersion.Version20;
        if (handshake.IsHttp2)
        {
            if (!backendIsHttp2)
            {
                response.RequestMessage!.Headers.NonValidated.TryGetValues("Sec-WebSocket-Key", out var key);
                if (!string.Equals(headers.SecWebSocketAccept.ToString(), AcceptFor(key.ToString()), StringComparison.Ordinal))
                {
                    return false;
                }
                headers.Remove("Sec-WebSocket-Accept");
                context.Response.StatusCode = StatusCodes.Status200OK;
            }
            return true;
        }
        if (backendIsHttp2)
        {
            headers.SecWebSocketAccept = AcceptFor(context.Request.Headers.SecWebSocketKey.ToString());
            headers.Connection = "Upgrade";
            headers.Upgrade = WebSocketToken;
            context.Response.StatusCode = StatusCodes.Status101SwitchingProtocols;
            return true;
        }
        if (response.Headers.NonValidated.TryGetValues("Upgrade", out var upgrade))
        {
            headers.Connection = "Upgrade";
            headers.Upgrade = upgrade.ToArray();
        }
        return true;
    }

    /// <summary>Sec-WebSocket-Accept for <paramref name="key"/>: base64 of the SHA-1 of the key and the GUID (RFC 6455 section 4.2.2).</summary>
    internal static string AcceptFor(string key)
    {
        var keyLength = Encoding.ASCII.GetByteCount(key);
        Span<byte> input = stackalloc byte[keyLength + AcceptGuid.Length];
        Encoding.ASCII.GetBytes(key, input);
        AcceptGuid.CopyTo(input[keyLength..]);
        Span<byte> hash = stackalloc byte[SHA1.HashSizeInBytes];
        SHA1.HashData(input, hash);
        return Convert.ToBase64String(hash);
    }
}
