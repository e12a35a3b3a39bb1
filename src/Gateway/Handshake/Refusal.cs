using System.Globalization;
using System.Text;

namespace Gateway.Handshake;

/// <summary>Why the gateway refused a handshake. Each has one status, one metric tag and one short text body.</summary>
internal enum RefusalReason
{
    Method,
    HttpVersion,
    UpgradeHeader,
    ConnectionHeader,
    Version,
    Key,
    ConnectProtocol,
    NotWebSocket,
    Origin,
    MissingOrigin,
    Subprotocol,
    RateLimit,
    ConnectionLimit,
    ClientConnectionLimit,
    BackendSubprotocol,
    Descriptors,
    UpgradedConnectionLimit,
    Unauthenticated,
    Forbidden,
    UserConnectionLimit,
}

/// <summary>The fixed answer for one <see cref="RefusalReason"/>, built once.</summary>
internal sealed class Refusal
{
    /// <summary>
    /// <c>Retry-After</c> of every 503 for lack of room (RFC 9110 section 10.2.3). On a busy gateway tunnels close all
    /// the time, so room comes back within seconds; a client at its own limit has to close one of its own first.
    /// Sooner would invite a reconnect loop against a full gateway, later would keep clients away after room is back.
    /// </summary>
    public const int NoRoomRetryAfterSeconds = 5;

    private static readonly Refusal[] ByReason = Build();

    private Refusal(RefusalReason reason, int status, string tag, string text, string? retryAfter = null)
    {
        Reason = reason;
        Status = status;
        Tag = tag;
        Text = text;
        RetryAfter = retryAfter;
        Body = Encoding.UTF8.GetBytes($"{status} {text}\n");
    }

    public RefusalReason Reason { get; }

    public int Status { get; }

    /// <summary>The <c>reason</c> tag of the refusal counter: snake_case, a fixed set.</summary>
    public string Tag { get; }

    /// <summary>What is wrong, for the body and the log.</summary>
    public string Text { get; }

    public byte[] Body { get; }

    /// <summary>A fixed <c>Retry-After</c> (seconds) this refusal always carries, or null.</summary>
    public string? RetryAfter { get; }

    public static Refusal Of(RefusalReason reason) => ByReason[(int)reason];

    public static IEnumerable<Refusal> All => ByReason;

    private static Refusal[] Build()
    {
        var noRoom = NoRoomRetryAfterSeconds.ToString(CultureInfo.InvariantCulture);
        Refusal[] all =
        [
            new(RefusalReason.Method, StatusCodes.Status405MethodNotAllowed, "method",
                "WebSocket handshake refused: it must be a GET (RFC 6455 section 4.2.1), or an extended CONNECT over HTTP/2 (RFC 8441)"),
            new(RefusalReason.HttpVersion, StatusCodes.Status400BadRequest, "http_version",
                "WebSocket handshake refused: it needs HTTP/1.1 or later (RFC 6455 section 4.2.1)"),
            new(RefusalReason.UpgradeHeader, StatusCodes.Status400BadRequest, "upgrade_header",
                "WebSocket handshake refused: the Upgrade header must contain the token websocket (RFC 6455 section 4.2.1)"),
            new(RefusalReason.ConnectionHeader, StatusCodes.Status400BadRequest, "connection_header",
                "WebSocket handshake refused: the Connection header must contain the token Upgrade (RFC 6455 section 4.2.1)"),
            new(RefusalReason.Version, StatusCodes.Status426UpgradeRequired, "version",
                "WebSocket handshake refused: only Sec-WebSocket-Version 13 is supported (RFC 6455 section 4.4)"),
            new(RefusalReason.Key, StatusCodes.Status400BadRequest, "key",
                "WebSocket handshake refused: Sec-WebSocket-Key must be one base64-encoded 16-byte value (RFC 6455 section 4.2.1)"),
            new(RefusalReason.ConnectProtocol, StatusCodes.Status400BadRequest, "connect_protocol",
                "Extended CONNECT refused: this gateway tunnels only :protocol websocket (RFC 8441 section 4)"),
            new(RefusalReason.NotWebSocket, StatusCodes.Status426UpgradeRequired, "not_websocket",
                "This route serves WebSocket connections only"),
            new(RefusalReason.Origin, StatusCodes.Status403Forbidden, "origin",
                "WebSocket handshake refused: pages from this Origin may not open WebSockets here (RFC 6455 section 10.2)"),
            new(RefusalReason.MissingOrigin, StatusCodes.Status403Forbidden, "missing_origin",
                "WebSocket handshake refused: this route requires an Origin header (RFC 6455 section 10.2)"),
            new(RefusalReason.Subprotocol, StatusCodes.Status400BadRequest, "subprotocol",
                "WebSocket handshake refused: offer a subprotocol this route accepts in Sec-WebSocket-Protocol (RFC 6455 section 4.2.1)"),
            new(RefusalReason.RateLimit, StatusCodes.Status429TooManyRequests, "rate_limit",
                "WebSocket handshake refused: too many handshakes from your address, retry after the time in Retry-After"),
            new(RefusalReason.ConnectionLimit, StatusCodes.Status503ServiceUnavailable, "connection_limit",
                "WebSocket handshake refused: the route is at its connection limit, retry after the time in Retry-After", noRoom),
            new(RefusalReason.ClientConnectionLimit, StatusCodes.Status503ServiceUnavailable, "client_connection_limit",
                "WebSocket handshake refused: your address has too many open WebSocket connections", noRoom),
            new(RefusalReason.BackendSubprotocol, StatusCodes.Status502BadGateway, "backend_subprotocol",
                "WebSocket handshake failed: the backend chose a subprotocol the client did not offer (RFC 6455 section 4.1)"),
            new(RefusalReason.Descriptors, StatusCodes.Status503ServiceUnavailable, "descriptors",
                "WebSocket handshake refused: the gateway is at its open-file limit, retry after the time in Retry-After", noRoom),
            new(RefusalReason.UpgradedConnectionLimit, StatusCodes.Status503ServiceUnavailable, "upgraded_connection_limit",
                "WebSocket handshake refused: the gateway is at its upgraded-connection limit, retry after the time in Retry-After", noRoom),
            new(RefusalReason.Unauthenticated, StatusCodes.Status401Unauthorized, "unauthenticated",
                "WebSocket handshake refused: a valid bearer token is required (RFC 6750)"),
            new(RefusalReason.Forbidden, StatusCodes.Status403Forbidden, "forbidden",
                "WebSocket handshake refused: the token does not grant access to this route"),
            new(RefusalReason.UserConnectionLimit, StatusCodes.Status503ServiceUnavailable, "user_connection_limit",
                "WebSocket handshake refused: your account has too many open WebSocket connections", noRoom),
        ];
        for (var i = 0; i < all.Length; i++)
        {
            if ((int)all[i].Reason != i)
            {
                throw new InvalidOperationException($"refusal table out of order at {all[i].Reason}");
            }
        }
        return all;
    }
}
