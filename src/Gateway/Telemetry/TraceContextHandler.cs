using System.Diagnostics;
using System.Net.Http.Headers;

namespace Gateway.Telemetry;

/// <summary>
/// Puts the handshake span's W3C trace context (<c>traceparent</c>, <c>tracestate</c>) on the backend's handshake
/// request, in place of whatever the client sent, so the backend's own spans are its children. Outermost in YARP's
/// client, in front of both ways a handshake leaves: the gateway's <c>UpgradeConnector</c>, which writes the head
/// itself and propagates nothing, and SocketsHttpHandler. The latter's diagnostics would overwrite the header whenever
/// an <see cref="Activity.Current"/> exists (ASP.NET Core's request activity, when its logging is on): they start an
/// <c>HttpRequestOut</c> activity under it, which nothing exports, and send that one's id. So the request is sent with
/// no current activity, and with nothing in the gateway listening to <c>System.Net.Http</c>'s activities they stay out
/// of the way. Present only while tracing is on.
/// </summary>
internal sealed class TraceContextHandler(HttpMessageHandler inner) : DelegatingHandler(inner)
{
    /// <summary>Set on the backend request by <see cref="TraceContextTransforms"/>.</summary>
    internal static readonly HttpRequestOptionsKey<Activity> SpanOption = new("Gateway.HandshakeSpan");

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        // Only handshakes carry a span; the check spares plain HTTP the allocation of an options bag.
        if (!IsHandshake(request) || !request.Options.TryGetValue(SpanOption, out var span))
        {
            return base.SendAsync(request, cancellationToken);
        }
        var headers = request.Headers;
        headers.Remove(SpanAttributes.TraceParentHeader);
        headers.Remove(SpanAttributes.TraceStateHeader);
        headers.TryAddWithoutValidation(SpanAttributes.TraceParentHeader, span.Id);
        if (span.TraceStateString is { Length: > 0 } traceState)
        {
            headers.TryAddWithoutValidation(SpanAttributes.TraceStateHeader, traceState);
        }
        return SendWithoutCurrentAsync(request, cancellationToken);
    }

    /// <summary>An async method of its own, so that clearing <see cref="Activity.Current"/> stays inside it.</summary>
    private async Task<HttpResponseMessage> SendWithoutCurrentAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        Activity.Current = null;
        try
        {
            return await base.SendAsync(request, cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            // YARP keeps the request (as the response's RequestMessage) for the tunnel's life; the span is not kept with it.
            ((IDictionary<string, object?>)request.Options).Remove(SpanOption.Key);
        }
    }

    private static bool IsHandshake(HttpRequestMessage request) =>
        request.Headers.NonValidated.Contains("Upgrade") || request.Method == HttpMethod.Connect;
}
