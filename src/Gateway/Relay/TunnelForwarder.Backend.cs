using System.Net;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Http.Timeouts;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Model;

namespace Gateway.Relay;

// The backend's side of the handshake: the request the route's transforms shape, sent with the cluster's client, and how
// its failure is answered. The versions follow the cluster's HttpRequest settings as YARP's forwarder reads them: an
// HTTP/1.1 upgrade (RFC 6455 section 4.1) unless the cluster asks for HTTP/2, then an extended CONNECT (RFC 8441),
// with one try over HTTP/1.1 when the backend turns out not to take it and the policy allows lower.
internal sealed partial class TunnelForwarder
{
    private const string WebSocketToken = "websocket";

    /// <summary>What YARP's forwarder uses when a cluster sets no <c>HttpRequest:ActivityTimeout</c>.</summary>
    internal static readonly TimeSpan DefaultActivityTimeout = TimeSpan.FromSeconds(100);

    /// <summary>
    /// Sends the handshake and returns the backend's answer, or null when there is none to pass on: the failure is then
    /// answered (status, error feature, log) as YARP's forwarder answers it.
    /// </summary>
    private async Task<HttpResponseMessage?> SendHandshakeAsync(HttpContext context, IReverseProxyFeature proxy, DestinationState destination,
        CancellationToken cancellationToken)
    {
        var config = proxy.Cluster.Config.HttpRequest;
        var prefix = destination.Model.Config.Address;
        var transformer = proxy.Route.Transformer;
        var client = proxy.Cluster.HttpClient;
        HttpRequestMessage? request = null;
        try
        {
            var (outgoingConnect, canFallBack) = ChooseVersion(config, prefix);
            request = await CreateRequestAsync(context, transformer, prefix, outgoingConnect, cancellationToken);
            if (request is null)
            {
                return null; // a transform answered the client itself
            }
            try
            {
                return await client.SendAsync(request, cancellationToken);
            }
            catch (HttpRequestException ex) when (canFallBack && NoHttp2WebSockets(ex))
            {
                Log.Http2WebSocketsRefused(_logger, destination.DestinationId, ex.Message);
                request.Dispose();
                request = null;
                request = await CreateRequestAsync(context, transformer, prefix, outgoingConnect: false, cancellationToken);
                return request is null ? null : await client.SendAsync(request, cancellationToken);
            }
        }
        catch (Exception ex)
        {
            await FailHandshakeAsync(context, transformer, ex, failedDuringCreation: request is null, cancellationToken);
            return null;
        }
    }

    /// <summary>
    /// HTTP/2 extended CONNECT or HTTP/1.1 upgrade, from the cluster's version and policy, as YARP's forwarder decides:
    /// HTTP/2 when asked for exactly, or over TLS when a higher version is allowed (then HTTP/1.1 if the backend refuses).
    /// </summary>
    private static (bool OutgoingConnect, bool CanFallBack) ChooseVersion(ForwarderRequestConfig? config, string prefix)
    {
        var version = config?.Version ?? HttpVersion.Version20;
        var policy = config?.VersionPolicy ?? HttpVersionPolicy.RequestVersionOrLower;
        var https = prefix.StartsWith("https://", StringComparison.OrdinalIgnoreCase);
        return (version.Major, policy, https) switch
        {
            (2, HttpVersionPolicy.RequestVersionExact, _) => (true, false),
            (2, HttpVersionPolicy.RequestVersionOrHigher, true) => (true, false),
            (1, HttpVersionPolicy.RequestVersionOrHigher, true) or (2, HttpVersionPolicy.RequestVersionOrLower, true)
                or (3, HttpVersionPolicy.RequestVersionOrLower, true) => (true, true),
            _ => (false, false),
        };
    }

    /// <summary>SocketsHttpHandler's way of saying the backend speaks no HTTP/2, or no WebSockets over it (RFC 8441 section 3).</summary>
    private static bool NoHttp2WebSockets(HttpRequestException ex) =>
        ex.Data.Contains("SETTINGS_ENABLE_CONNECT_PROTOCOL") || ex.Data.Contains("HTTP2_ENABLED");

    /// <summary>
    /// The backend's request: method and version first, then the route's transforms (path, headers, X-Forwarded-*,
    /// the trace context), then the upgrade's own fields, which transforms never copy (RFC 9110 section 7.6.1: hop by
    /// hop). Null when a transform answered the client instead.
    /// </summary>
    private static async Task<HttpRequestMessage?> CreateRequestAsync(HttpContext context, HttpTransformer transformer, string prefix,
        bool outgoingConnect, CancellationToken cancellationToken)
    {
        var request = new HttpRequestMessage();
        if (outgoingConnect)
        {
            request.Method = HttpMethod.Connect;
            request.Version = HttpVersion.Version20;
            request.VersionPolicy = HttpVersionPolicy.RequestVersionExact;
            request.Headers.Protocol = WebSocketToken;
        }
        else
        {
            request.Method = HttpMethod.Get;
            request.Version = HttpVersion.Version11;
            request.VersionPolicy = HttpVersionPolicy.RequestVersionOrLower;
        }
        await transformer.TransformRequestAsync(context, request, prefix, cancellationToken);
        if (context.Response.StatusCode != StatusCodes.Status200OK || context.Response.HasStarted)
        {
            request.Dispose();
            return null;
        }
        var clientIsHttp2 = HttpProtocol.IsHttp2(context.Request.Protocol);
        if (outgoingConnect)
        {
            // HTTP/1.1 client to an HTTP/2 backend: the key belongs to the HTTP/1.1 handshake only (RFC 8441 section 4).
            request.Headers.Remove("Sec-WebSocket-Key");
        }
        else if (clientIsHttp2)
        {
            // HTTP/2 client to an HTTP/1.1 backend: the upgrade's fields, with a key of the gateway's (RFC 6455 section 4.1).
            request.Headers.TryAddWithoutValidation("Connection", "Upgrade");
            request.Headers.TryAddWithoutValidation("Upgrade", WebSocketToken);
            request.Headers.TryAddWithoutValidation("Sec-WebSocket-Key", NewKey());
        }
        else
        {
            // HTTP/1.1 on both sides: the client's Upgrade and the Connection token that names it, as sent.
            var upgrade = context.Request.Headers.Upgrade;
            request.Headers.TryAddWithoutValidation("Connection", "Upgrade");
            request.Headers.TryAddWithoutValidation("Upgrade", (IEnumerable<string>)upgrade!);
        }
        request.RequestUri ??= RequestUtilities.MakeDestinationAddress(prefix, context.Request.Path, context.Request.QueryString);
        return request;
    }

    /// <summary>A Sec-WebSocket-Key: 16 random bytes, base64 (RFC 6455 section 4.1, client requirement 7).</summary>
    private static string NewKey()
    {
        Span<byte> nonce = stackalloc byte[16];
        RandomNumberGenerator.Fill(nonce);
        return Convert.ToBase64String(nonce);
    }

    /// <summary>
    /// No answer from the backend: the status and error YARP's forwarder would leave. The client gone (or the route's
    /// timeout, which cancels the request) is a cancelled request, never the backend's fault; a timeout is a 504;
    /// anything else (refused, reset, a broken answer) a 502.
    /// </summary>
    private async Task FailHandshakeAsync(HttpContext context, HttpTransformer transformer, Exception exception, bool failedDuringCreation,
        CancellationToken cancellationToken)
    {
        ForwarderError error;
        int status;
        if (context.RequestAborted.IsCancellationRequested)
        {
            error = ForwarderError.RequestCanceled;
            status = context.Features.Get<IHttpRequestTimeoutFeature>() is { RequestTimeoutToken.IsCancellationRequested: true }
                ? StatusCodes.Status504GatewayTimeout
                : StatusCodes.Status400BadRequest;
        }
        else if (exception is OperationCanceledException)
        {
            (error, status) = (ForwarderError.RequestTimedOut, StatusCodes.Status504GatewayTimeout);
        }
        else
        {
            (error, status) = (failedDuringCreation ? ForwarderError.RequestCreation : ForwarderError.Request, StatusCodes.Status502BadGateway);
        }
        Fail(context, error, exception, status);
        try
        {
            // Response transforms run on failures too (YARP passes them no response).
            await transformer.TransformResponseAsync(context, proxyResponse: null, cancellationToken);
        }
        catch (OperationCanceledException)
        {
            // The failure above is what counts.
        }
    }

    /// <summary>Records <paramref name="error"/> for the error count, passive health and the connect retry, and sets the status.</summary>
    private void Fail(HttpContext context, ForwarderError error, Exception? exception, int status)
    {
        context.Features.Set<IForwarderErrorFeature>(new ForwarderFailure(error, exception));
        if (error is not (ForwarderError.RequestCanceled or ForwarderError.UpgradeResponseClient))
        {
            Log.HandshakeFailed(_logger, error, exception?.Message ?? string.Empty, exception);
        }
        if (!context.Response.HasStarted)
        {
            context.Response.Clear();
            context.Response.StatusCode = status;
        }
    }
}
