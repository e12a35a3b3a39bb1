using System.Diagnostics;
using Gateway.Identity;
using Gateway.Listeners;

namespace Gateway.Handshake;

/// <summary>
/// The first step of YARP's proxy pipeline: the route is known, no backend has been chosen. A WebSocket handshake
/// that breaks a rule of the route's policy is answered here and never reaches affinity, load balancing or a
/// backend. Ordinary HTTP passes untouched where the policy allows it. Each handshake, and each request refused here,
/// gets one span while tracing is on (<see cref="HandshakeTracing"/>).
/// </summary>
internal sealed class HandshakeGateMiddleware
{
    private readonly RequestDelegate _next;
    private readonly HandshakePolicies _policies;
    private readonly RefusalReporter _reporter;
    private readonly FileDescriptorLimit _descriptors;
    private readonly HandshakeTracing _tracing;
    private readonly UpgradedConnectionLimit _upgraded;

    public HandshakeGateMiddleware(RequestDelegate next, HandshakePolicies policies, RefusalReporter reporter, FileDescriptorLimit descriptors,
        HandshakeTracing tracing, UpgradedConnectionLimit upgraded)
    {
        _upgraded = upgraded;
        _next = next;
        _policies = policies;
        _reporter = reporter;
        _descriptors = descriptors;
        _tracing = tracing;
    }

    public Task InvokeAsync(HttpContext context)
    {
        var route = context.GetReverseProxyFeature().Route;
        var rules = _policies.For(route);
        var request = context.Request;

        var refusal = UpgradeRequest.Check(context, rules.AllowPlainHttp, out var isHandshake);
        if (refusal is null && !isHandshake)
        {
            // Ordinary HTTP on a route with identity is not authenticated here, but the backend may trust the claim
            // headers on every request of the route: a client's own never pass.
            rules.Identity?.RemoveClaimHeaders(request);
            return _next(context);
        }
        var span = _tracing.Enabled ? _tracing.Start(context, route) : null;
        if (refusal is { } invalid)
        {
            return RefuseAsync(context, span, invalid, route.Config.RouteId);
        }

        // RFC 6455 section 4.2.1 item 7 and section 10.2: the Origin of a browser's page, checked against the policy.
        var origin = request.Headers.Origin;
        if (origin.Count == 0)
        {
            if (!rules.AllowMissingOrigin)
            {
                return RefuseAsync(context, span, RefusalReason.MissingOrigin, route.Config.RouteId);
            }
        }
        else if (origin.Count > 1 || !rules.Origins.Allows(origin[0]!, request.Headers.Host))
        {
            return RefuseAsync(context, span, RefusalReason.Origin, route.Config.RouteId, origin.ToString());
        }

        // Who the client is, before the subprotocols are filtered: a token may travel as one of them.
        return rules.Identity is { } identity
            ? AuthenticateAsync(context, span, rules, route.Config.RouteId, identity)
            : Admit(context, span, rules, route.Config.RouteId, default);
    }

    /// <summary>
    /// The policy's identity: a refused token gets 401 (RFC 6750 §3: with <c>WWW-Authenticate: Bearer</c>) or 403, and
    /// never reaches a backend; a valid one has set the claim headers, and names the user for the limits and the relay.
    /// </summary>
    private async Task AuthenticateAsync(HttpContext context, Activity? span, HandshakeRules rules, string route, TokenAuthenticator identity)
    {
        AuthenticationOutcome outcome;
        try
        {
            outcome = await identity.AuthenticateAsync(context);
        }
        catch (OperationCanceledException) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client left while the key set was being fetched.
            if (span is not null)
            {
                HandshakeTracing.Finish(span, context);
            }
            return;
        }
        switch (outcome.Status)
        {
            case AuthenticationStatus.Unauthenticated:
                context.Response.Headers.WWWAuthenticate = outcome.TokenPresented ? "Bearer error=\"invalid_token\"" : "Bearer";
                await RefuseAsync(context, span, RefusalReason.Unauthenticated, route, outcome.Detail);
                return;
            case AuthenticationStatus.Forbidden:
                context.Response.Headers.WWWAuthenticate = "Bearer error=\"insufficient_scope\"";
                await RefuseAsync(context, span, RefusalReason.Forbidden, route, outcome.Detail);
                return;
        }
        await Admit(context, span, rules, route, outcome);
    }

    /// <summary>The rest of the handshake's checks, then the limits and the backend.</summary>
    private Task Admit(HttpContext context, Activity? span, HandshakeRules rules, string route, AuthenticationOutcome identity)
    {
        var request = context.Request;
        // Item 8: the subprotocols offered; those the policy does not accept are not forwarded.
        var offered = request.Headers.SecWebSocketProtocol;
        if (!rules.Subprotocols.TryFilter(offered, out var forwarded, out var changed))
        {
            return RefuseAsync(context, span, RefusalReason.Subprotocol, route, offered.Count == 0 ? "none offered" : offered.ToString());
        }
        if (changed)
        {
            request.Headers.SecWebSocketProtocol = forwarded;
        }

        UpgradeRequest.NormalizeUpgradeHeader(request);
        // What the relay and the backend checks read from here on.
        var handshake = new WebSocketHandshake(route, rules.Policy, HttpProtocol.IsHttp2(request.Protocol), request.IsHttps)
        {
            Span = span,
            UserId = identity.Subject,
            TokenClosesAt = identity.ClosesAt,
        };
        context.Features.Set(handshake);
        return span is null ? ForwardAsync(context, rules, handshake) : ForwardTracedAsync(context, rules, handshake);
    }

    private async Task ForwardAsync(HttpContext context, HandshakeRules rules, WebSocketHandshake handshake)
    {
        var route = handshake.RouteId;
        var permit = default(ConnectionLimits.Permit);
        if (!rules.Limits.IsEmpty)
        {
            var limited = rules.Limits.TryEnter(context.Connection.RemoteIpAddress, out permit, out var retryAfter);
            if (limited is { } reason)
            {
                await RefuseAsync(context, handshake.Span, reason, route, retryAfter: retryAfter);
                return;
            }
        }
        // Per user (the token's subject), from any address, as the per-client limit counts per address.
        System.Threading.RateLimiting.RateLimitLease? userPermit = null;
        if (handshake.UserId is { } user && !rules.Limits.TryEnterUser(user, out userPermit))
        {
            permit.Dispose();
            await RefuseAsync(context, handshake.Span, RefusalReason.UserConnectionLimit, route);
            return;
        }
        // Last, so that a refusal by the policy's own limits does not take room: two descriptors for the tunnel.
        if (!_descriptors.TryEnter())
        {
            userPermit?.Dispose();
            permit.Dispose();
            await RefuseAsync(context, handshake.Span, RefusalReason.Descriptors, route);
            return;
        }
        // Kestrel's limit on upgraded connections, for both HTTP/1.1 paths, before a backend is contacted.
        var upgrade = !handshake.IsHttp2 && !_upgraded.IsUnlimited;
        if (upgrade && !_upgraded.TryEnter())
        {
            _descriptors.Exit();
            userPermit?.Dispose();
            permit.Dispose();
            await RefuseAsync(context, handshake.Span, RefusalReason.UpgradedConnectionLimit, route);
            return;
        }
        // A proxied WebSocket holds its permits for its whole life: until the request ends, or later when the tunnel
        // outlives it (WebSocketHandshake.OutliveRequest).
        handshake.Hold(permit, _descriptors, upgrade ? _upgraded : null, userPermit);
        try
        {
            await _next(context);
        }
        finally
        {
            handshake.Release();
        }

        if (context.Features.Get<BackendSubprotocolRefusal>() is { } refusal && !context.Response.HasStarted)
        {
            context.Response.Clear();
            await RefuseAsync(context, handshake.Span, RefusalReason.BackendSubprotocol, route, refusal.Detail);
        }
    }

    /// <summary>
    /// <see cref="ForwardAsync"/> for a traced handshake: whatever ends it without an upgrade (a backend's refusal or
    /// failure, a client gone) ends its span. The span is read from the feature, not held here: an upgrade takes it out
    /// at the 101, and this frame lives as long as the tunnel.
    /// </summary>
    private async Task ForwardTracedAsync(HttpContext context, HandshakeRules rules, WebSocketHandshake handshake)
    {
        try
        {
            await ForwardAsync(context, rules, handshake);
        }
        finally
        {
            if (handshake.Span is { } span)
            {
                handshake.Span = null;
                HandshakeTracing.Finish(span, context);
            }
        }
    }

    /// <summary>Answers a refusal; a traced one also records the reason and ends the span once the answer is written.</summary>
    private Task RefuseAsync(HttpContext context, Activity? span, RefusalReason reason, string route, string? detail = null, TimeSpan retryAfter = default)
    {
        if (span is null)
        {
            return _reporter.RefuseAsync(context, reason, route, detail, retryAfter);
        }
        HandshakeTracing.Refused(span, reason);
        return RefuseTracedAsync(context, span, reason, route, detail, retryAfter);
    }

    private async Task RefuseTracedAsync(HttpContext context, Activity span, RefusalReason reason, string route, string? detail, TimeSpan retryAfter)
    {
        try
        {
            await _reporter.RefuseAsync(context, reason, route, detail, retryAfter);
        }
        finally
        {
            if (context.Features.Get<WebSocketHandshake>() is { } handshake && ReferenceEquals(handshake.Span, span))
            {
                handshake.Span = null;
            }
            HandshakeTracing.Finish(span, context);
        }
    }
}
