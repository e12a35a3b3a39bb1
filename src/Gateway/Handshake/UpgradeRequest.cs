using System.Buffers.Text;
using Gateway.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Primitives;
using Microsoft.Net.Http.Headers;

namespace Gateway.Handshake;

/// <summary>
/// Tells a WebSocket handshake from ordinary HTTP, and checks the handshake's form: RFC 6455 section 4.2.1 for an
/// HTTP/1.1 upgrade, RFC 8441 for HTTP/2 extended CONNECT.
/// </summary>
internal static class UpgradeRequest
{
    public const string WebSocket = "websocket";

    /// <summary>
    /// Returns why the request is refused, or null. <paramref name="isHandshake"/> says whether it is a WebSocket
    /// handshake (the gate's other rules apply) rather than ordinary HTTP the route allows.
    /// </summary>
    public static RefusalReason? Check(HttpContext context, bool allowPlainHttp, out bool isHandshake)
    {
        var request = context.Request;
        var headers = request.Headers;
        isHandshake = false;

        if (HttpProtocol.IsHttp2(request.Protocol) || HttpProtocol.IsHttp3(request.Protocol))
        {
            if (context.Features.Get<IHttpExtendedConnectFeature>() is { IsExtendedConnect: true } connect)
            {
                isHandshake = true;
                // RFC 8441 section 4: the :protocol pseudo-header names what the stream carries; only WebSockets here.
                if (!string.Equals(connect.Protocol, WebSocket, StringComparison.OrdinalIgnoreCase))
                {
                    return RefusalReason.ConnectProtocol;
                }
                // RFC 8441 section 5: Sec-WebSocket-Version is used as in RFC 6455 (13, else 426 per section 4.4);
                // Sec-WebSocket-Key is not, :protocol replaces it.
                return IsVersion13(headers.SecWebSocketVersion) ? null : RefusalReason.Version;
            }
            return allowPlainHttp ? null : PlainRequestRefusal(request);
        }

        var upgrade = headers.Upgrade;
        var looksLikeHandshake = HttpSyntax.ListContains(upgrade, WebSocket)
            || headers.ContainsKey(HeaderNames.SecWebSocketKey)
            || headers.ContainsKey(HeaderNames.SecWebSocketVersion);
        if (!looksLikeHandshake)
        {
            if (allowPlainHttp)
            {
                return null;
            }
            if (upgrade.Count == 0)
            {
                return PlainRequestRefusal(request);
            }
            // An upgrade to another protocol on a WebSocket-only route fails as a WebSocket handshake, below.
        }

        isHandshake = true;
        // RFC 6455 section 4.2.1 item 1: "An HTTP/1.1 or higher GET request".
        if (!HttpMethods.IsGet(request.Method))
        {
            return RefusalReason.Method;
        }
        if (HttpProtocol.IsHttp10(request.Protocol))
        {
            return RefusalReason.HttpVersion;
        }
        // Item 3: an Upgrade header field containing "websocket", compared case-insensitively.
        if (!HttpSyntax.ListContains(upgrade, WebSocket))
        {
            return RefusalReason.UpgradeHeader;
        }
        // Item 4: a Connection header field that includes the token "Upgrade", case-insensitively.
        if (!HttpSyntax.ListContains(headers.Connection, "Upgrade"))
        {
            return RefusalReason.ConnectionHeader;
        }
        // Item 6 and section 4.4: version 13, else 426 with the versions we speak. Checked before the key so that
        // clients of older drafts (no version, other keys) learn what to send.
        if (!IsVersion13(headers.SecWebSocketVersion))
        {
            return RefusalReason.Version;
        }
        // Item 5: Sec-WebSocket-Key, a nonce of 16 bytes, base64-encoded (24 characters).
        if (!IsValidKey(headers.SecWebSocketKey))
        {
            return RefusalReason.Key;
        }
        return null;
    }

    /// <summary>
    /// YARP tunnels an HTTP/1.1 upgrade only when Upgrade is exactly "websocket"; RFC 6455 allows the token within
    /// a list (e.g. "websocket, foo"), so a valid handshake is passed on with the one protocol the backend will speak.
    /// </summary>
    public static void NormalizeUpgradeHeader(HttpRequest request)
    {
        var upgrade = request.Headers.Upgrade;
        if (upgrade.Count != 0 && !(upgrade.Count == 1 && string.Equals(upgrade[0], WebSocket, StringComparison.OrdinalIgnoreCase)))
        {
            request.Headers.Upgrade = WebSocket;
        }
    }

    private static RefusalReason PlainRequestRefusal(HttpRequest request) =>
        HttpMethods.IsGet(request.Method) ? RefusalReason.NotWebSocket : RefusalReason.Method;

    private static bool IsVersion13(StringValues version) => version.Count == 1 && version[0] == "13";

    private static bool IsValidKey(StringValues key) =>
        key.Count == 1 && key[0] is { Length: 24 } value && Base64.IsValid(value.AsSpan(), out var decoded) && decoded == 16;
}
