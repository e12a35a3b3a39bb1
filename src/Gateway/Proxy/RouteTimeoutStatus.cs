using Microsoft.AspNetCore.Http.Timeouts;
using Yarp.ReverseProxy.Forwarder;

namespace Gateway.Proxy;

/// <summary>
/// Answers 504 when a route's <c>Timeout</c> cut a request before the backend answered. Since YARP 2.2 the forwarder
/// sees the timeout as a cancelled request (the request-timeouts middleware cancels <c>RequestAborted</c>), answers 400
/// itself and returns normally, so the timeouts middleware, which writes 504 only for an exception, never does.
/// </summary>
internal sealed class RouteTimeoutStatusMiddleware(RequestDelegate next)
{
    public async Task InvokeAsync(HttpContext context)
    {
        await next(context);
        if (!context.Response.HasStarted
            && context.Features.Get<IForwarderErrorFeature>() is { Error: ForwarderError.RequestCanceled or ForwarderError.RequestBodyCanceled }
            && context.Features.Get<IHttpRequestTimeoutFeature>() is { RequestTimeoutToken.IsCancellationRequested: true })
        {
            context.Response.StatusCode = StatusCodes.Status504GatewayTimeout;
        }
    }
}
