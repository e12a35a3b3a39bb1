using Gateway.Listeners;

namespace Gateway.Handshake;

/// <summary>
/// The first step of YARP's proxy pipeline: the route is known, no backend has been chosen. A WebSocket handshake
/// that breaks a rule of the route's policy is answered here and never reaches affinity, load balancing or a
/// backend. Ordinary HTTP passes untouched where the policy allows it.
/// </summary>
public sealed class HandshakeGateMiddleware
{
    private readonly RequestDelegate _next;
    private readonly HandshakePolicies _policies;
    private readonly RefusalReporter _reporter;
    private readonly FileDescriptorLimit _descriptors;

    public HandshakeGateMiddleware(RequestDelegate next, HandshakePolicies policies, RefusalReporter reporter, FileDescriptorLimit descriptors)
    {
        _next = next;
        _policies = policies;
        _reporter = reporter;
        _descriptors = descriptors;
    }

    public Task InvokeAsync(HttpContext context)
    {
        var route = context.GetReverseProxyFeature().Route;
        var rules = _policies.For(route);
        var request = context.Request;

        var refusal = UpgradeRequest.Check(context, rules.AllowPlainHttp, out var isHandshake);
        if (refusal is { } invalid)
        {
            return _reporter.RefuseAsync(context, invalid, route.Config.RouteId);
        }
        if (!isHandshake)
        {
            return _next(context);
        }

        // RFC 6455 section 4.2.1 item 7 and section 10.2: the Origin of a browser's page, checked against the policy.
        var origin = request.Headers.Origin;
        if (origin.Count == 0)
        {
            if (!rules.AllowMissingOrigin)
            {
                return _reporter.RefuseAsync(context, RefusalReason.MissingOrigin, route.Config.RouteId);
            }
        }
        else if (origin.Count > 1 || !rules.Origins.Allows(origin[0]!, request.Headers.Host))
        {
            return _reporter.RefuseAsync(context, RefusalReason.Origin, route.Config.RouteId, origin.ToString());
        }

        // Item 8: the subprotocols offered; those the policy does not accept are not forwarded.
        var offered = request.Headers.SecWebSocketProtocol;
        if (!rules.Subprotocols.TryFilter(offered, out var forwarded, out var changed))
        {
            return _reporter.RefuseAsync(context, RefusalReason.Subprotocol, route.Config.RouteId, offered.Count == 0 ? "none offered" : offered.ToString());
        }
        if (changed)
        {
            request.Headers.SecWebSocketProtocol = forwarded;
        }

        UpgradeRequest.NormalizeUpgradeHeader(request);
        // What the relay and the backend checks read from here on.
        context.Features.Set(new WebSocketHandshake(route.Config.RouteId, rules.Policy, HttpProtocol.IsHttp2(request.Protocol), request.IsHttps));
        return ForwardAsync(context, rules, route.Config.RouteId);
    }

    private async Task ForwardAsync(HttpContext context, HandshakeRules rules, string route)
    {
        var permit = default(ConnectionLimits.Permit);
        if (!rules.Limits.IsEmpty)
        {
            var limited = rules.Limits.TryEnter(context.Connection.RemoteIpAddress, out permit, out var retryAfter);
            if (limited is { } reason)
            {
                await _reporter.RefuseAsync(context, reason, route, retryAfter: retryAfter);
                return;
            }
        }
        // Last, so that a refusal by the policy's own limits does not take room: two descriptors for the tunnel.
        if (!_descriptors.TryEnter())
        {
            permit.Dispose();
            await _reporter.RefuseAsync(context, RefusalReason.Descriptors, route);
            return;
        }
        try
        {
            // A proxied WebSocket is one request for the tunnel's whole life: the permit is held until it closes.
            await _next(context);
        }
        finally
        {
            _descriptors.Exit();
            permit.Dispose();
        }

        if (context.Features.Get<BackendSubprotocolRefusal>() is { } refusal && !context.Response.HasStarted)
        {
            context.Response.Clear();
            await _reporter.RefuseAsync(context, RefusalReason.BackendSubprotocol, route, refusal.Detail);
        }
    }
}
