using System.Buffers.Text;
using System.Text;
using Gateway.Http;
using Microsoft.Extensions.Primitives;

namespace Gateway.Identity;

/// <summary>
/// Reads a token from where a client put it, and takes it out of what goes on to the backend: the bearer subprotocol
/// always, the query parameter as configured. The request's headers and query are edited in place before YARP's
/// transforms copy them, so what the backend sees and the request line it gets are the edited ones.
/// </summary>
internal static class TokenCarriers
{
    /// <summary>Kubernetes' bearer subprotocol: the token, base64url without padding, after this prefix.</summary>
    public const string BearerSubprotocolPrefix = "base64url.bearer.authorization.k8s.io.";

    /// <summary>What a redacted query parameter's value becomes.</summary>
    public const string Redacted = "REDACTED";

    public static string? Read(HttpRequest request, TokenSource source) => source.Carrier switch
    {
        TokenCarrier.Header => FromAuthorization(request.Headers.Authorization),
        TokenCarrier.Query => FromQuery(request.QueryString, source.Name!),
        TokenCarrier.Cookie => request.Cookies[source.Name!] is { Length: > 0 } cookie ? cookie : null,
        TokenCarrier.Subprotocol => FromSubprotocols(request.Headers.SecWebSocketProtocol),
        _ => null,
    };

    /// <summary>RFC 6750 §2.1: <c>Authorization: Bearer TOKEN</c>; the scheme is case-insensitive (RFC 9110 §11.1).</summary>
    private static string? FromAuthorization(StringValues values)
    {
        foreach (var value in values)
        {
            if (value is { Length: > 7 } && value.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
            {
                return value[7..].Trim();
            }
        }
        return null;
    }

    private static string? FromQuery(QueryString query, string name)
    {
        if (!query.HasValue)
        {
            return null;
        }
        foreach (var part in query.Value!.AsSpan(1).Split('&'))
        {
            var pair = query.Value.AsSpan(1)[part];
            var equals = pair.IndexOf('=');
            if (equals > 0 && NameIs(pair[..equals], name))
            {
                var value = Uri.UnescapeDataString(pair[(equals + 1)..].ToString().Replace('+', ' '));
                return value.Length > 0 ? value : null;
            }
        }
        return null;
    }

    private static string? FromSubprotocols(StringValues offered)
    {
        foreach (var element in HttpSyntax.ListElements(offered))
        {
            if (element.StartsWith(BearerSubprotocolPrefix, StringComparison.Ordinal))
            {
                return DecodeBase64Url(element[BearerSubprotocolPrefix.Length..]);
            }
        }
        return null;
    }

    private static string? DecodeBase64Url(ReadOnlySpan<char> encoded)
    {
        var bytes = new byte[Base64Url.GetMaxDecodedLength(encoded.Length)];
        if (!Base64Url.TryDecodeFromChars(encoded, bytes, out var written) || written == 0)
        {
            // Not base64url: an unusable token, refused as malformed rather than ignored.
            return encoded.ToString();
        }
        return Encoding.UTF8.GetString(bytes, 0, written);
    }

    /// <summary>Takes every bearer subprotocol out of the offered list, so the backend can never see (or pick) one.</summary>
    public static void RemoveBearerSubprotocols(HttpRequest request)
    {
        var offered = request.Headers.SecWebSocketProtocol;
        if (offered.Count == 0 || !offered.ToString().Contains(BearerSubprotocolPrefix, StringComparison.Ordinal))
        {
            return;
        }
        var kept = new StringBuilder();
        foreach (var element in HttpSyntax.ListElements(offered))
        {
            if (!element.StartsWith(BearerSubprotocolPrefix, StringComparison.Ordinal))
            {
                kept.Append(kept.Length == 0 ? "" : ", ").Append(element);
            }
        }
        if (kept.Length == 0)
        {
            request.Headers.Remove(Microsoft.Net.Http.Headers.HeaderNames.SecWebSocketProtocol);
        }
        else
        {
            request.Headers.SecWebSocketProtocol = kept.ToString();
        }
    }

    /// <summary>Removes the query parameter <paramref name="name"/>, or replaces its value by <see cref="Redacted"/>.</summary>
    public static void StripQuery(HttpRequest request, string name, bool redact)
    {
        var query = request.QueryString;
        if (!query.HasValue)
        {
            return;
        }
        var text = query.Value!.AsSpan(1);
        var kept = new StringBuilder(text.Length);
        var changed = false;
        foreach (var range in text.Split('&'))
        {
            var pair = text[range];
            var equals = pair.IndexOf('=');
            var pairName = equals < 0 ? pair : pair[..equals];
            if (NameIs(pairName, name))
            {
                changed = true;
                if (!redact)
                {
                    continue;
                }
                pair = $"{pairName}={Redacted}";
            }
            kept.Append(kept.Length == 0 ? "?" : "&").Append(pair);
        }
        if (changed)
        {
            request.QueryString = new QueryString(kept.Length == 0 ? null : kept.ToString());
        }
    }

    private static bool NameIs(ReadOnlySpan<char> encodedName, string name) =>
        encodedName.Equals(name, StringComparison.Ordinal)
        || encodedName.Contains('%') && Uri.UnescapeDataString(encodedName.ToString()).Equals(name, StringComparison.Ordinal);
}
