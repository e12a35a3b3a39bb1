using Gateway.Handshake;
using Yarp.ReverseProxy.Transforms;
using Yarp.ReverseProxy.Transforms.Builder;

namespace Gateway.Telemetry;

/// <summary>
/// Hands the handshake span to <see cref="TraceContextHandler"/> on the backend request YARP builds (a transform is
/// where the request and the client's <c>HttpContext</c> meet). Registered only while tracing is on.
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
                transform.ProxyRequest.Options.Set(TraceContextHandler.SpanOption, span);
            }
            return default;
        });
}
