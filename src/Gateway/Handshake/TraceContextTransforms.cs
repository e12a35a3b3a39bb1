using Yarp.ReverseProxy.Transforms;
using Yarp.ReverseProxy.Transforms.Builder;

namespace Gateway.Handshake;

/// <summary>
/// Puts the handshake span's W3C trace context (<c>traceparent</c>, <c>tracestate</c>) on the backend's handshake
/// request in place of whatever the client sent, so the backend's own spans are its children. A transform is where the
/// request and the client's <c>HttpContext</c> meet; <see cref="Proxy.GatewayHttpClientFactory"/> keeps
/// SocketsHttpHandler from overwriting the headers. Registered only while tracing is on.
/// </summary>
internal sealed class TraceContextTransforms : ITransformProvider
{
    public void ValidateRoute(TransformRouteValidationContext context)
    {
    }

    public void ValidateCluster(TransformClusterValidationContext context)
    {
    }

    public void Apply(TransformBuilderContext context) =>
        context.AddRequestTransform(static transform =>
        {
            if (transform.HttpContext.Features.Get<WebSocketHandshake>()?.Span is { } span)
            {
                var headers = transform.ProxyRequest.Headers;
                headers.Remove(SpanAttributes.TraceParentHeader);
                headers.Remove(SpanAttributes.TraceStateHeader);
                headers.TryAddWithoutValidation(SpanAttributes.TraceParentHeader, span.Id);
                if (span.TraceStateString is { Length: > 0 } traceState)
                {
                    headers.TryAddWithoutValidation(SpanAttributes.TraceStateHeader, traceState);
                }
            }
            return default;
        });
}
