using Gateway.AccessLogging;
using Gateway.Handshake;
using Microsoft.AspNetCore.Http.Features;
using Yarp.ReverseProxy.Forwarder;

namespace Gateway.Relay;

/// <summary>
/// Puts a <see cref="RelayTunnel"/> in front of the upgrade of every WebSocket handshake the gate let through, just
/// before YARP's forwarder, and afterwards tells passive health (which runs around it) what the tunnel's end was: a
/// backend's fault counts against it, whatever the client did never does.
/// </summary>
internal sealed class RelayMiddleware(RequestDelegate next, KeepAliveSweeper sweeper, RelayMetrics metrics, ILogger<RelayTunnel> logger,
    AccessLogWriter accessLog)
{

    public async Task InvokeAsync(HttpContext context)
    {
        if (context.Features.Get<WebSocketHandshake>() is not { } handshake)
        {
            await next(context);
            return;
        }

        var upgrade = handshake.IsHttp2 ? null : context.Features.Get<IHttpUpgradeFeature>();
        var connect = handshake.IsHttp2 ? context.Features.Get<IHttpExtendedConnectFeature>() : null;
        // The gateway's own tunnels (the startup warm-up's) are neither counted nor logged: they are not the operator's traffic.
        var recorded = metrics.Records(handshake.RouteId);
        if (!recorded && context.Features.Get<IHttpMetricsTagsFeature>() is { } hostingMetrics)
        {
            // Nor by ASP.NET Core's http.server.request.duration, whose route label would name the warm-up's route.
            hostingMetrics.MetricsDisabled = true;
        }
        var tunnel = new RelayTunnel(context, handshake, upgrade, connect, sweeper, metrics.For(handshake.RouteId), logger,
            recorded && accessLog.Enabled ? accessLog : null);
        if (upgrade is not null)
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
            await next(context);
        }
        finally
        {
            tunnel.Complete();
            if (tunnel.BackendAttached && !tunnel.ClientUpgraded)
            {
                AbandonBackend(context, tunnel);
            }
            // The server's own features back: a retried attempt on another destination starts from them.
            if (upgrade is not null)
            {
                context.Features.Set(upgrade);
            }
            else
            {
                context.Features.Set(connect);
            }
            context.Features.Set<RelayTunnel>(null);
        }
        ReportOutcome(context, tunnel);
    }

    /// <summary>
    /// The backend accepted but the client's connection could not be upgraded (Kestrel's upgraded-connection limit, a
    /// backend header the server refuses to send, a client gone): the tunnel took the backend's connection and nobody
    /// else closes it. The client, which got nothing yet, gets a 502 rather than the backend's 101 with nothing behind it.
    /// </summary>
    private static void AbandonBackend(HttpContext context, RelayTunnel tunnel)
    {
        tunnel.DisposeBackend();
        if (!context.Response.HasStarted)
        {
            context.Response.Clear();
            context.Response.StatusCode = StatusCodes.Status502BadGateway;
        }
    }

    /// <summary>
    /// The relay's verdict is what passive health hears of a tunnel: YARP's loops find nothing to copy and report
    /// nothing once the tunnel relays, and the relay lets no peer failure through to them. A backend that was lost,
    /// broke protocol or stopped answering is a failed request; a tunnel the client or the gateway ended is not (who
    /// ended it is decided in <see cref="RelayTunnel"/>'s closing and read paths, once).
    /// </summary>
    private static void ReportOutcome(HttpContext context, RelayTunnel tunnel)
    {
        if (tunnel.EndedByBackendFault && context.Features.Get<IForwarderErrorFeature>() is null)
        {
            context.Features.Set<IForwarderErrorFeature>(BackendFault.Instance);
        }
    }

    /// <summary>The backend ended the tunnel badly, as YARP would say of a backend stream that failed.</summary>
    private sealed class BackendFault : IForwarderErrorFeature
    {
        public static readonly BackendFault Instance = new();

        public ForwarderError Error => ForwarderError.UpgradeResponseDestination;

        public Exception? Exception => null;
    }
}
