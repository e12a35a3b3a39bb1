using Gateway.Handshake;
using Gateway.Http;
using Yarp.ReverseProxy.Transforms;

namespace Gateway.Relay;

/// <summary>
/// A YARP response transform on every route: a backend that accepts a WebSocket with a subprotocol the client did not
/// offer (or that the gate did not forward) breaks RFC 6455 section 4.2.2; the client would fail the connection
/// (section 4.1) with no reason given. The client gets a 502 instead, and the upgrade is not completed. The transform
/// only decides: the response must not start here (YARP's affinity transform still sets its cookie after this one),
/// so the gate writes the refusal once YARP has returned. It runs first of <see cref="WebSocketResponseTransforms"/>.
/// </summary>
internal static class BackendSubprotocolCheck
{
    private const string HeaderName = "Sec-WebSocket-Protocol";

    public static ValueTask Check(ResponseTransformContext transform)
    {
        if (transform.ProxyResponse is not { } response || !WebSocketResponseTransforms.IsAcceptedTunnel(response)
            || !response.Headers.NonValidated.TryGetValues(HeaderName, out var selectedValues))
        {
            return ValueTask.CompletedTask;
        }

        var http = transform.HttpContext;
        // What the backend was offered: the client's list as the gate left it.
        var offered = http.Request.Headers.SecWebSocketProtocol;
        string? selected = null;
        var count = 0;
        foreach (var value in selectedValues)
        {
            selected = value;
            count++;
        }
        if (count == 1 && HttpSyntax.ListContains(offered, selected, StringComparison.Ordinal))
        {
            return ValueTask.CompletedTask;
        }

        // Not copying the body also means YARP does not complete the upgrade: the backend connection is dropped.
        transform.SuppressResponseBody = true;
        http.Response.Clear();
        http.Response.StatusCode = StatusCodes.Status502BadGateway;
        http.Features.Set(new BackendSubprotocolRefusal($"backend chose '{selectedValues}', client offered '{offered}'"));
        return ValueTask.CompletedTask;
    }
}
