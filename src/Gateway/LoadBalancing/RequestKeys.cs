using Microsoft.Extensions.Primitives;

namespace Gateway.LoadBalancing;

/// <summary>
/// Finds a query parameter or a cookie in the request as sent and hashes its value in place. ASP.NET Core's
/// <c>Request.Query</c> and <c>Request.Cookies</c> would build a dictionary of every parameter or cookie per request;
/// YARP itself forwards the raw query and Cookie header and never builds them.
/// </summary>
internal static class RequestKeys
{
    /// <summary>
    /// The first <c>name=value</c> pair of the raw query whose name matches case-insensitively (as
    /// <c>Request.Query</c> matches), its value decoded as <c>Request.Query</c> would: <c>+</c> is a space and
    /// <c>%XX</c> a byte of UTF-8, so <c>a+b</c>, <c>a%20b</c> and a header <c>a b</c> are one key.
    /// </summary>
    public static bool TryHashQuery(string? query, string name, StableHash start, out ulong hash)
    {
        hash = 0;
        var rest = query.AsSpan();
        if (rest.StartsWith('?'))
        {
            rest = rest[1..];
        }
        while (!rest.IsEmpty)
        {
            var end = rest.IndexOf('&');
            var pair = end < 0 ? rest : rest[..end];
            rest = end < 0 ? default : rest[(end + 1)..];

            var equals = pair.IndexOf('=');
            var pairName = equals < 0 ? pair : pair[..equals];
            if (!pairName.Equals(name, StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }
            var value = equals < 0 ? default : pair[(equals + 1)..];
            if (value.IsEmpty)
            {
                return false;
            }
            hash = HashPercentDecoded(start, value);
            return true;
        }
        return false;
    }

    /// <summary>
    /// The cookie's value from the Cookie header(s) (RFC 6265 §5.4: <c>name=value</c> pairs separated by <c>"; "</c>),
    /// matched case-insensitively like <c>Request.Cookies</c>; surrounding double quotes (§4.1.1) are not part of it.
    /// </summary>
    public static bool TryHashCookie(StringValues headers, string name, StableHash start, out ulong hash)
    {
        hash = 0;
        foreach (var header in headers)
        {
            var rest = header.AsSpan();
            while (!rest.IsEmpty)
            {
                var end = rest.IndexOf(';');
                var pair = (end < 0 ? rest : rest[..end]).Trim();
                rest = end < 0 ? default : rest[(end + 1)..];

                var equals = pair.IndexOf('=');
                if (equals <= 0 || !pair[..equals].TrimEnd().Equals(name, StringComparison.OrdinalIgnoreCase))
                {
                    continue;
                }
                var value = pair[(equals + 1)..].TrimStart();
                if (value.Length >= 2 && value[0] == '"' && value[^1] == '"')
                {
                    value = value[1..^1];
                }
                if (value.IsEmpty)
                {
                    return false;
                }
                hash = StableHash.Of(start, value);
                return true;
            }
        }
        return false;
    }

    private static ulong HashPercentDecoded(StableHash hash, ReadOnlySpan<char> value)
    {
        var run = 0; // start of the characters not yet hashed, which stand for themselves
        var i = 0;
        while (i < value.Length)
        {
            var c = value[i];
            if (c == '+')
            {
                hash.AppendUtf8(value[run..i]);
                hash.Append((byte)' ');
                run = ++i;
            }
            else if (c == '%' && i + 2 < value.Length && IsHex(value[i + 1]) && IsHex(value[i + 2]))
            {
                hash.AppendUtf8(value[run..i]);
                hash.Append((byte)((HexValue(value[i + 1]) << 4) | HexValue(value[i + 2])));
                i += 3;
                run = i;
            }
            else
            {
                i++;
            }
        }
        hash.AppendUtf8(value[run..]);
        return hash.Finish();
    }

    private static bool IsHex(char c) => char.IsAsciiHexDigit(c);

    private static int HexValue(char c) => c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}
