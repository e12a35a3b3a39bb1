using Microsoft.Net.Http.Headers;
using Yarp.ReverseProxy.Transforms;
using Yarp.ReverseProxy.Transforms.Builder;

namespace Gateway.Listeners;

/// <summary>
/// Drops an empty <c>Host</c> (RFC 9112 section 3.2 lets a client send one) from the copied request headers, so the
/// forwarded request gets the destination's authority as every other request does. Left in, YARP keeps it (it only
/// replaces a copied Host that equals the request's non-empty host) and SocketsHttpHandler, which cannot parse an empty
/// Host, writes its own Host line in front of it: the backend got two.
/// </summary>
internal sealed class EmptyHostTransforms : ITransformProvider
{
    public void ValidateRoute(TransformRouteValidationContext context)
    {
    }

    public void ValidateCluster(TransformClusterValidationContext context)
    {
    }

    public void Apply(TransformBuilderContext context) => context.AddRequestTransform(static transform =>
    {
        // Only the copied empty value: a Host that a route's own transform set stays.
        if (transform.ProxyRequest.Headers.NonValidated.TryGetValues(HeaderNames.Host, out var host)
            && host.Count == 1 && string.IsNullOrEmpty(host.ToString()))
        {
            transform.ProxyRequest.Headers.Remove(HeaderNames.Host);
        }
        return default;
    });
}
