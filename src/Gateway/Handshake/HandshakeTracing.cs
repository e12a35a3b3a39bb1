using Gateway.Metrics;
using System.Diagnostics;
using System.Net;
using System.Reflection;
using Gateway.Configuration;
using Microsoft.AspNetCore.Http.Features;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Model;

namespace Gateway.Handshake;

/// <summary>
/// One span per WebSocket handshake (<c>Gateway:Telemetry:Tracing</c>), of kind Server, from the handshake gate until
/// the 101 (HTTP/2: the 200, RFC 8441) is sent to the client, or until the refusal or failure is. Never per frame and
/// never for the tunnel's life: a trace is about how a connection was set up; what flows through it is in the metrics.
/// </summary>
/// <remarks>
/// The gateway's own span rather than ASP.NET Core's <c>Microsoft.AspNetCore.Hosting.HttpRequestIn</c> activity (or
/// YARP's <c>proxy.forwarder</c>): those last as long as the request, and a proxied WebSocket is one request for its
/// whole life, so they would end hours later, and every tunnel would hold its activity meanwhile. The gateway listens to
/// neither source, so neither is created (ASP.NET Core's also is while its request logging is on, which the gateway turns
/// off unless configured; this span then takes no parent from it). For the same reason this span is never
/// <see cref="Activity.Current"/> in the
/// request's flow (everything awaited in a tunnel captures that flow and would keep the span alive): it travels in
/// the <see cref="WebSocketHandshake"/> feature, and <see cref="TraceContextTransforms"/> puts its context on the backend
/// request. With tracing off (the default) the source is not even created: nothing is done or allocated per handshake.
/// </remarks>
internal sealed class HandshakeTracing : IDisposable
{
    public const string SourceName = "Gateway";

    /// <summary>A fixed name: the route and everything else that varies are attributes.</summary>
    public const string SpanName = "WebSocket handshake";

    private readonly ActivitySource? _source;
    private readonly InternalTraffic? _internal;

    /// <param name="internalTraffic">The gateway's own traffic (the warm-up), which gets no span.</param>
    public HandshakeTracing(GatewayOptions options, InternalTraffic? internalTraffic = null)
    {
        _internal = internalTraffic;
        if (options.Telemetry.ExportsTraces)
        {
            _source = new ActivitySource(SourceName, typeof(HandshakeTracing).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion);
        }
    }

    public bool Enabled => _source is not null;

    /// <summary>
    /// Starts the span of a handshake (or of a request the gate refuses), continuing the client's W3C
    /// <c>traceparent</c> when it sent a valid one. Null when tracing is off or nothing listens.
    /// </summary>
    public Activity? Start(HttpContext context, RouteModel route)
    {
        if (_source is not { } source || !source.HasListeners() || _internal?.Is(route.Config.RouteId) == true)
        {
            return null;
        }
        var request = context.Request;
        var parent = RemoteParent(request.Headers);
        // StartActivity makes the span Current and, without a remote parent, takes Current as its parent: neither is
        // wanted (see the remarks), so Current is cleared around it and put back.
        var previous = Activity.Current;
        if (previous is not null)
        {
            Activity.Current = null;
        }
        var span = source.StartActivity(SpanName, ActivityKind.Server, parent);
        Activity.Current = previous;
        if (span is { IsAllDataRequested: true })
        {
            var config = route.Config;
            span.SetTag(SpanAttributes.RequestMethod, request.Method);
            span.SetTag(SpanAttributes.UrlScheme, request.Scheme);
            span.SetTag(SpanAttributes.UrlPath, request.Path.Value);
            span.SetTag(SpanAttributes.ProtocolVersion, ProtocolVersion(request.Protocol));
            span.SetTag(SpanAttributes.ServerAddress, request.Host.Host);
            if (request.Host.Port is { } port)
            {
                span.SetTag(SpanAttributes.ServerPort, port);
            }
            span.SetTag(SpanAttributes.ClientAddress, ClientAddress(context.Connection.RemoteIpAddress));
            span.SetTag(SpanAttributes.Route, config.RouteId);
            if (config.Match.Path is { } template)
            {
                span.SetTag(SpanAttributes.RouteTemplate, template);
            }
            span.SetTag(SpanAttributes.Cluster, config.ClusterId);
        }
        return span;
    }

    /// <summary>The gate refused the handshake: the reason the refusal metric counts, and status Error.</summary>
    internal static void Refused(Activity span, RefusalReason reason)
    {
        var tag = Refusal.Of(reason).Tag;
        if (span.IsAllDataRequested)
        {
            span.SetTag(SpanAttributes.RefusalReason, tag);
            span.SetTag(SpanAttributes.ErrorType, tag);
        }
        span.SetStatus(ActivityStatusCode.Error, tag);
    }

    /// <summary>The client has its 101 (or RFC 8441's 200): the span ends, successfully.</summary>
    internal static void Upgraded(Activity span, HttpContext context, string destination, string? subprotocol)
    {
        if (span.IsAllDataRequested)
        {
            span.SetTag(SpanAttributes.StatusCode, context.Response.StatusCode);
            span.SetTag(SpanAttributes.Destination, destination);
            if (subprotocol is not null)
            {
                span.SetTag(SpanAttributes.Subprotocol, subprotocol);
            }
        }
        span.Stop();
    }

    /// <summary>
    /// The gate is done with a request that was not upgraded (upgraded ones ended their span at the 101): a refusal,
    /// a backend that answered something else, a backend that could not be reached, a client that went away.
    /// </summary>
    internal static void Finish(Activity span, HttpContext context)
    {
        if (span.IsStopped)
        {
            return;
        }
        var status = context.Response.StatusCode;
        if (span.IsAllDataRequested)
        {
            span.SetTag(SpanAttributes.StatusCode, status);
            if (context.Features.Get<IReverseProxyFeature>()?.ProxiedDestination is { } destination)
            {
                span.SetTag(SpanAttributes.Destination, destination.DestinationId);
            }
        }
        if (span.Status != ActivityStatusCode.Error)
        {
            // Not a refusal of the gate's: YARP's error when forwarding failed, else the status the backend answered with.
            var error = context.Features.Get<IForwarderErrorFeature>()?.Error.ToString() ?? StatusText(status);
            if (span.IsAllDataRequested)
            {
                span.SetTag(SpanAttributes.ErrorType, error);
            }
            span.SetStatus(ActivityStatusCode.Error, error);
        }
        span.Stop();
    }

    public void Dispose() => _source?.Dispose();

    /// <summary>The client's W3C trace context (traceparent, tracestate), or none when absent, repeated or malformed.</summary>
    private static ActivityContext RemoteParent(IHeaderDictionary headers)
    {
        var traceParent = headers[SpanAttributes.TraceParentHeader];
        if (traceParent.Count != 1)
        {
            return default;
        }
        var traceState = headers[SpanAttributes.TraceStateHeader];
        return ActivityContext.TryParse(traceParent[0], traceState.Count == 0 ? null : traceState.ToString(), isRemote: true, out var parent)
            ? parent
            : default;
    }

    private static string ProtocolVersion(string protocol) =>
        HttpProtocol.IsHttp2(protocol) ? "2" : HttpProtocol.IsHttp11(protocol) ? "1.1" : HttpProtocol.IsHttp3(protocol) ? "3" : HttpProtocol.IsHttp10(protocol) ? "1.0" : protocol;

    /// <summary>The client as trusted (the forwarded-headers step has already applied <c>TrustedForwarders</c>).</summary>
    private static string? ClientAddress(IPAddress? address) =>
        address is null ? null : (address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address).ToString();

    private static string StatusText(int status) => status.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
