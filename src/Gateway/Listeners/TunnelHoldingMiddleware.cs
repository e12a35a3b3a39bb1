using Microsoft.AspNetCore.Http.Features;

namespace Gateway.Listeners;

/// <summary>
/// The outermost middleware for Kestrel's requests that may become tunnels (an HTTP/1.1 upgrade, an HTTP/2 extended
/// CONNECT): it offers <see cref="ITunnelHandover"/>, and when the tunnel forwarder hands a tunnel over at the 101 it
/// waits for the tunnel here, after the rest of the pipeline (routing, YARP's steps, the gate, the retry) has returned
/// and released what it held. Kestrel ends an upgraded connection or an HTTP/2 stream when its request ends, so
/// something must wait; this frame is the only one that does. Requests on the lean HTTP/1.1 path already have their
/// handover (their request ends at the 101) and pass untouched, as does every request that cannot upgrade.
/// </summary>
internal sealed class TunnelHoldingMiddleware(RequestDelegate next)
{
    public Task InvokeAsync(HttpContext context) =>
        context.Features.Get<ITunnelHandover>() is null && MayUpgrade(context) ? HoldAsync(context) : next(context);

    private static bool MayUpgrade(HttpContext context) =>
        context.Features.Get<IHttpUpgradeFeature>() is { IsUpgradableRequest: true }
        || context.Features.Get<IHttpExtendedConnectFeature>() is { IsExtendedConnect: true };

    private async Task HoldAsync(HttpContext context)
    {
        var handover = new Handover();
        context.Features.Set<ITunnelHandover>(handover);
        await next(context);
        if (handover.Tunnel is { } tunnel)
        {
            await tunnel;
        }
    }

    private sealed class Handover : ITunnelHandover
    {
        public Task? Tunnel { get; private set; }

        public bool EndsRequest => false;

        public void Hold(Task tunnel)
        {
            if (Tunnel is not null)
            {
                throw new InvalidOperationException("a request hands over one tunnel");
            }
            Tunnel = tunnel;
        }
    }
}
