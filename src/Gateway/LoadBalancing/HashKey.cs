using System.Globalization;
using Gateway.Http;

namespace Gateway.LoadBalancing;

internal enum HashKeySource
{
    /// <summary>A value of the route's match, e.g. <c>{room}</c> in <c>/chat/{room}</c>.</summary>
    Route,
    /// <summary>A query parameter, percent-decoded.</summary>
    Query,
    /// <summary>A request header (its first value).</summary>
    Header,
    /// <summary>A cookie's value as sent.</summary>
    Cookie,
}

/// <summary>
/// Where a request's hash key comes from, as cluster metadata writes it: <c>SOURCE:NAME</c>, e.g. <c>route:room</c>,
/// <c>query:room</c>, <c>header:X-Room</c>, <c>cookie:room</c>. Reading a request's key allocates nothing: the
/// key is hashed where it lies.
/// </summary>
internal sealed class HashKey
{
    private HashKey(HashKeySource source, string name)
    {
        Source = source;
        Name = name;
    }

    public HashKeySource Source { get; }

    public string Name { get; }

    public override string ToString() => $"{Source.ToString().ToLowerInvariant()}:{Name}";

    /// <summary>Parses <c>SOURCE:NAME</c>; on failure <paramref name="error"/> says why, for the operator.</summary>
    public static bool TryParse(string? text, out HashKey key, out string error)
    {
        key = null!;
        error = $"'{text}' is not SOURCE:NAME, where SOURCE is route, query, header or cookie (e.g. 'route:room', 'header:X-Room')";
        var colon = text?.IndexOf(':') ?? -1;
        if (colon <= 0)
        {
            return false;
        }
        var name = text![(colon + 1)..];
        HashKeySource source;
        switch (text[..colon].ToLowerInvariant())
        {
            case "route":
                source = HashKeySource.Route;
                if (!IsName(name, static c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.'))
                {
                    error = $"'{text}': '{name}' is not a route value name (letters, digits, '_', '-', '.'), as in '{{{name}}}' of a route's Match:Path";
                    return false;
                }
                break;
            case "query":
                source = HashKeySource.Query;
                // Compared with the query as sent, so no character that would be percent-encoded or would end the name.
                if (!IsName(name, static c => HttpSyntax.IsTokenChar(c) && c is not ('&' or '%' or '+' or '#')))
                {
                    error = $"'{text}': '{name}' is not a query parameter name (letters, digits and !$'*-.^_`|~)";
                    return false;
                }
                break;
            case "header":
                source = HashKeySource.Header;
                if (!HttpSyntax.IsToken(name))
                {
                    error = $"'{text}': '{name}' is not a header name (RFC 9110 §5.1: a token)";
                    return false;
                }
                break;
            case "cookie":
                source = HashKeySource.Cookie;
                if (!HttpSyntax.IsToken(name))
                {
                    error = $"'{text}': '{name}' is not a cookie name (RFC 6265 §4.1.1: a token)";
                    return false;
                }
                break;
            default:
                return false;
        }
        key = new HashKey(source, name);
        return true;
    }

    /// <summary>Hashes the request's key; false when the request has none, or an empty one.</summary>
    public bool TryHash(HttpContext context, out ulong hash) => TryHash(context, StableHash.Create(), out hash);

    /// <summary>Hashes the request's key from <paramref name="start"/> (the cluster's seed, if it has one).</summary>
    internal bool TryHash(HttpContext context, StableHash start, out ulong hash)
    {
        var request = context.Request;
        switch (Source)
        {
            case HashKeySource.Route:
                if (request.RouteValues.TryGetValue(Name, out var value) && value is not null)
                {
                    return TryHashText(start, value as string ?? Convert.ToString(value, CultureInfo.InvariantCulture), out hash);
                }
                break;
            case HashKeySource.Header:
                if (request.Headers.TryGetValue(Name, out var values) && values.Count > 0)
                {
                    return TryHashText(start, values[0], out hash);
                }
                break;
            case HashKeySource.Query:
                return RequestKeys.TryHashQuery(request.QueryString.Value, Name, start, out hash);
            case HashKeySource.Cookie:
                return RequestKeys.TryHashCookie(request.Headers.Cookie, Name, start, out hash);
        }
        hash = 0;
        return false;
    }

    private static bool TryHashText(StableHash start, string? text, out ulong hash)
    {
        hash = string.IsNullOrEmpty(text) ? 0 : StableHash.Of(start, text);
        return !string.IsNullOrEmpty(text);
    }

    private static bool IsName(string name, Func<char, bool> allowed) => name.Length > 0 && name.All(allowed);
}
