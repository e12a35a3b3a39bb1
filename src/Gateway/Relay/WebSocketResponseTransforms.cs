using System.Net;
using Gateway.Handshake;
using Gateway.Proxy;
using Yarp.ReverseProxy.Transforms;
using Yarp.ReverseProxy.Transforms.Builder;

namespace Gateway.Relay;

/// <summary>
/// The gateway's response transforms for WebSocket handshakes, on every route, in the order they must run:
/// first <see cref="BackendSubprotocolCheck"/> (a backend's 101 may still be refused), then the handshake records what
/// was agreed and the relay takes the backend stream over. Registered before <c>AddReverseProxy</c>, so they run before
/// YARP's own (its affinity transform still sets its cookie after them).
/// </summary>
internal sealed class WebSocketResponseTransforms : ITransformProvider
{
    public void ValidateRoute(TransformRouteValidationContext context)
    {
    }

    public void ValidateCluster(TransformClusterValidationContext context)
    {
    }

    public void Apply(TransformBuilderContext context)
    {
        context.AddResponseTransform(static transform => BackendSubprotocolCheck.Check(transform));
        context.AddResponseTransform(static transform => AttachAsync(transform));
    }

    /// <summary>
    /// The backend accepted: the handshake notes the subprotocol and extensions in force, and the relay takes the
    /// backend's connection, leaving YARP a content with nothing to copy (HttpContent caches the stream it returns, so
    /// YARP would otherwise get the same one).
    /// </summary>
    private static async ValueTask AttachAsync(ResponseTransformContext transform)
    {
        if (transform.ProxyResponse is not { } response || transform.SuppressResponseBody || !IsAcceptedTunnel(response)
            || transform.HttpContext.Features.Get<WebSocketHandshake>() is not { } handshake)
        {
            return;
        }
        response.Headers.NonValidated.TryGetValues("Sec-WebSocket-Protocol", out var subprotocol);
        response.Headers.NonValidated.TryGetValues("Sec-WebSocket-Extensions", out var extensions);
        handshake.Accept(subprotocol.Count == 0 ? null : subprotocol.ToString(), extensions.Count == 0 ? default : extensions.ToArray());
        if (transform.HttpContext.Features.Get<RelayTunnel>() is { } tunnel)
        {
            var backend = await response.Content.ReadAsStreamAsync(transform.CancellationToken).ConfigureAwait(false);
            response.Content = new UpgradedContent(tunnel.AttachBackend(backend, flushWrites: response.Version == HttpVersion.Version20));
        }
    }

    /// <summary>A 101 to an HTTP/1.1 upgrade, or a 200 to an HTTP/2 extended CONNECT (RFC 8441 §5).</summary>
    internal static bool IsAcceptedTunnel(HttpResponseMessage response) =>
        response.StatusCode == HttpStatusCode.SwitchingProtocols
        || response.StatusCode == HttpStatusCode.OK && response.RequestMessage?.Method == HttpMethod.Connect;
}
