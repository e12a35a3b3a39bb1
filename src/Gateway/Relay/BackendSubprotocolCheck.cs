using Gateway.Http;

namespace Gateway.Relay;

/// <summary>
/// A backend that accepts a WebSocket with a subprotocol the client did not offer (or that the gate did not forward)
/// breaks RFC 6455 section 4.2.2; the client would fail the connection (section 4.1) with no reason given. The client
/// gets a 502 instead (written by the gate, which reports refusals), and the upgrade is not completed.
/// </summary>
internal static class BackendSubprotocolCheck
{
    private const string HeaderName = "Sec-WebSocket-Protocol";

    /// <summary>Why the backend's acceptance breaks the rule, or null when it keeps it.</summary>
    public static string? Violation(HttpResponseMessage response, HttpRequest request)
    {
        if (!response.Headers.NonValidated.TryGetValues(HeaderName, out var selectedValues))
        {
            return null;
        }
        // What the backend was offered: the client's list as the gate left it.
        var offered = request.Headers.SecWebSocketProtocol;
        string? selected = null;
        var count = 0;
        foreach (var value in selectedValues)
        {
            selected = value;
            count++;
        }
        return count == 1 && HttpSyntax.ListContains(offered, selected, StringComparison.Ordinal)
            ? null
            : $"backend chose '{selectedValues}', client offered '{offered}'";
    }
}
