using Gateway.KeepAlive;
using Gateway.Policies;
using Microsoft.AspNetCore.Http.Features;
using Yarp.ReverseProxy.Model;
using Yarp.ReverseProxy.Transforms;

namespace Gateway.Relay;

/// <summary>
/// Puts a <see cref="RelayTunnel"/> in front of every WebSocket request's upgrade, in YARP's proxy pipeline, so it
/// knows the route's policy. Requests that are not WebSocket handshakes pass untouched.
/// </summary>
public sealed class RelayMiddleware
{
    private readonly RequestDelegate _next;
    private readonly WebSocketPolicies _policies;
    private readonly KeepAliveSweeper _sweeper;
    private readonly RelayMetrics _metrics;
    private readonly ILogger<RelayTunnel> _logger;

    public RelayMiddleware(RequestDelegate next, WebSocketPolicies policies, KeepAliveSweeper sweeper, RelayMetrics metrics, ILogger<RelayTunnel> logger)
    {
        _next = next;
        _policies = policies;
        _sweeper = sweeper;
        _metrics = metrics;
        _logger = logger;
    }

    public async Task InvokeAsync(HttpContext context)
    {
        var upgrade = context.Features.Get<IHttpUpgradeFeature>();
        var connect = context.Features.Get<IHttpExtendedConnectFeature>();
        var http1 = upgrade is { IsUpgradableRequest: true } && IsWebSocketUpgrade(context.Request.Headers.Upgrade);
        var http2 = !http1 && connect is { IsExtendedConnect: true } && string.Equals(connect.Protocol, "websocket", StringComparison.OrdinalIgnoreCase);
        if (!http1 && !http2)
        {
            await _next(context);
            return;
        }

        var route = context.GetReverseProxyFeature().Route;
        var tunnel = new RelayTunnel(context, http1 ? upgrade : null, http2 ? connect : null,
            _policies.ForRoute(route), route.Config.RouteId, _sweeper, _metrics, _logger);
        if (http1)
        {
            context.Features.Set<IHttpUpgradeFeature>(tunnel);
        }
        else
        {
            context.Features.Set<IHttpExtendedConnectFeature>(tunnel);
        }
        context.Features.Set(tunnel);
        try
        {
            await _next(context);
        }
        finally
        {
            tunnel.Complete();
        }
    }

    private static bool IsWebSocketUpgrade(Microsoft.Extensions.Primitives.StringValues upgrade)
    {
        foreach (var value in upgrade)
        {
            if (value is not null && value.Contains("websocket", StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// A YARP response transform: when the backend answers 101, hands the tunnel the backend stream YARP is about to
    /// copy from (HttpContent caches the stream it returns, so both hold the same one).
    /// </summary>
    internal static async ValueTask AttachBackendAsync(ResponseTransformContext context)
    {
        // A 101 that an earlier transform refused (SuppressResponseBody: the client gets an error, not a tunnel) is not attached.
        if (context.ProxyResponse is { StatusCode: System.Net.HttpStatusCode.SwitchingProtocols } response && !context.SuppressResponseBody
            && context.HttpContext.Features.Get<RelayTunnel>() is { } tunnel)
        {
            tunnel.AttachBackend(await response.Content.ReadAsStreamAsync(context.CancellationToken));
        }
    }
}

public static class RelayExtensions
{
    /// <summary>Adds the frame-aware relay to YARP's proxy pipeline.</summary>
    public static IReverseProxyApplicationBuilder UseWebSocketRelay(this IReverseProxyApplicationBuilder proxy)
    {
        proxy.UseMiddleware<RelayMiddleware>();
        return proxy;
    }
}
