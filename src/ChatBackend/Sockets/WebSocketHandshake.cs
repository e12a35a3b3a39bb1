using System.Net.WebSockets;
using Microsoft.Net.Http.Headers;

namespace ChatBackend.Sockets;

/// <summary>Shared accept logic so every WebSocket endpoint negotiates identically.</summary>
internal static class WebSocketHandshake
{
    /// <summary>
    /// Picks the first protocol in the client's offered order that the backend supports. The client's order
    /// wins (not the server's) so a client can deliberately prefer an older protocol version.
    /// </summary>
    public static string? SelectSubprotocol(IEnumerable<string> offered, IReadOnlyList<string> supported)
    {
        foreach (var candidate in offered)
        {
            foreach (var known in supported)
            {
                // Subprotocol tokens are compared exactly (RFC 6455 section 4.1 treats them as opaque tokens).
                if (string.Equals(candidate, known, StringComparison.Ordinal))
                {
                    return known;
                }
            }
        }

        return null;
    }

    public static Task<WebSocket> AcceptAsync(HttpContext context, BackendSettings settings)
    {
        var acceptContext = new WebSocketAcceptContext
        {
            SubProtocol = SelectSubprotocol(context.WebSockets.WebSocketRequestedProtocols, settings.Subprotocols),
            // Only takes effect when the client offered permessage-deflate; otherwise frames stay uncompressed.
            DangerousEnableCompression = true,
            KeepAliveInterval = settings.KeepAliveInterval,
        };
        return context.WebSockets.AcceptWebSocketAsync(acceptContext);
    }

    /// <summary>Plain HTTP on a WebSocket endpoint: 426 tells the client which protocol to upgrade to.</summary>
    public static Task RejectNonWebSocketAsync(HttpContext context)
    {
        context.Response.StatusCode = StatusCodes.Status426UpgradeRequired;
        context.Response.Headers[HeaderNames.Upgrade] = "websocket";
        context.Response.Headers[HeaderNames.Connection] = "Upgrade";
        context.Response.ContentType = "text/plain; charset=utf-8";
        return context.Response.WriteAsync("This endpoint only accepts WebSocket connections.\n", context.RequestAborted);
    }
}
