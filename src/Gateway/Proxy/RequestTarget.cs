using System.Buffers;
using System.Net;

namespace Gateway.Proxy;

/// <summary>
/// The request target, Host value and endpoint of a backend address, read from <see cref="Uri.OriginalString"/> by a
/// span scan when the address is in a plainly canonical form, and from the <see cref="Uri"/> otherwise. It exists
/// because Uri parses lazily: YARP builds a fresh Uri per request, and the first <see cref="Uri.PathAndQuery"/> or
/// <see cref="Uri.Authority"/> on it runs the whole component parse and escaping, measured at about 4 % of the
/// gateway's CPU over a burst of WebSocket connects.
/// </summary>
/// <remarks>
/// Every answer is what the Uri property gives (RequestTargetTests compares them on generated addresses). Whatever
/// Uri would change (escape, lower-case, compress, canonicalise, drop a default) or might read otherwise (userinfo,
/// IPv6, IDN, fragments) sends the scan to the Uri instead: a fallback is always right.
/// </remarks>
internal static class RequestTarget
{
    private const string Prefix = "http://"; // only plain http reaches the connector, and Uri lower-cases a scheme
    private const int DefaultPort = 80;

    /// <summary>Lower-case host names, IPv4 literals and the port: Uri lower-cases DNS names, so upper case is not plain.</summary>
    private static readonly SearchValues<char> AuthorityChars = SearchValues.Create("abcdefghijklmnopqrstuvwxyz0123456789-.:");

    /// <summary>
    /// RFC 3986 section 3.3 pchar and '/' without pct-encoded: what Uri leaves as it is in a path. '%' (which Uri may
    /// unescape), '\' (which it turns into '/'), '#', '[' and ']' are left out on purpose.
    /// </summary>
    private static readonly SearchValues<char> PathChars =
        SearchValues.Create("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@/");

    /// <summary>RFC 3986 section 3.4: a query is pchar, '/' and '?'.</summary>
    private static readonly SearchValues<char> QueryChars =
        SearchValues.Create("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@/?");

    /// <summary>The request-target in origin-form (RFC 9112 section 3.2.1): <see cref="Uri.PathAndQuery"/>.</summary>
    public static ReadOnlySpan<char> PathAndQuery(Uri uri) =>
        TryParse(uri.OriginalString, out var parts) ? parts.PathAndQuery : uri.PathAndQuery;

    /// <summary>The Host field value when the request has none (RFC 9112 section 3.2): <see cref="Uri.Authority"/>.</summary>
    public static ReadOnlySpan<char> Authority(Uri uri) =>
        TryParse(uri.OriginalString, out var parts) ? parts.Authority : uri.Authority;

    /// <summary>
    /// Where to connect: an <see cref="IPEndPoint"/> for an IP literal, else a <see cref="DnsEndPoint"/>, from
    /// <see cref="Uri.IdnHost"/> and <see cref="Uri.Port"/>.
    /// </summary>
    public static EndPoint EndPoint(Uri uri)
    {
        if (TryParse(uri.OriginalString, out var parts))
        {
            return parts.IsIPv4 && IPAddress.TryParse(parts.Host, out var literal)
                ? new IPEndPoint(literal, parts.Port)
                : new DnsEndPoint(parts.Host.ToString(), parts.Port);
        }
        return IPAddress.TryParse(uri.IdnHost, out var address)
            ? new IPEndPoint(address, uri.Port)
            : new DnsEndPoint(uri.IdnHost, uri.Port);
    }

    /// <summary>
    /// The parts of <c>http://host[:port]/path[?query]</c> when each is already as Uri would give it; false for
    /// anything else (the caller then asks the Uri).
    /// </summary>
    internal static bool TryParse(string address, out Parts parts)
    {
        parts = default;
        var s = address.AsSpan();
        if (!s.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return false;
        }
        var rest = s[Prefix.Length..];
        // The authority ends at the path's '/'. No path ("http://h", "http://h?q": Uri gives "/"), '@' (userinfo),
        // '[' (IPv6), '%', '\', '#', upper case or anything else ends it early or not at all.
        var authorityLength = rest.IndexOfAnyExcept(AuthorityChars);
        if (authorityLength <= 0 || rest[authorityLength] != '/')
        {
            return false;
        }
        var authority = rest[..authorityLength];
        var colon = authority.IndexOf(':');
        var host = colon < 0 ? authority : authority[..colon];
        var port = DefaultPort;
        if (colon >= 0 && !TryParsePort(authority[(colon + 1)..], out port))
        {
            return false;
        }
        if (!TryCheckHost(host, out var isIPv4))
        {
            return false;
        }
        var target = rest[authorityLength..];
        var query = target.IndexOf('?');
        var path = query < 0 ? target : target[..query];
        if (path.ContainsAnyExcept(PathChars) || HasDotSegment(path)
            || query >= 0 && target[(query + 1)..].ContainsAnyExcept(QueryChars))
        {
            return false;
        }
        // Uri leaves the scheme's default port out of the authority ("http://h:80/" has authority "h").
        parts = new Parts(host, port == DefaultPort ? host : authority, target, port, isIPv4);
        return true;
    }

    /// <summary>1 to 5 digits up to 65535 without leading zeros; an empty port or "080" Uri reads as 80 and drops.</summary>
    private static bool TryParsePort(ReadOnlySpan<char> digits, out int port)
    {
        port = 0;
        if (digits.Length is 0 or > 5 || digits.ContainsAnyExceptInRange('0', '9') || digits[0] == '0' && digits.Length > 1)
        {
            return false;
        }
        foreach (var digit in digits)
        {
            port = port * 10 + (digit - '0');
        }
        return port <= 65535;
    }

    /// <summary>
    /// A lower-case host name (RFC 1123 section 2.1 labels, none an IDN's "xn--") or a dotted-quad IPv4 literal in
    /// canonical form. A name whose last label starts with a digit is one Uri may read as IPv4 in another form
    /// ("127.1", "0x7f.0.0.1", "2130706433") and rewrite, so only the canonical quad passes.
    /// </summary>
    private static bool TryCheckHost(ReadOnlySpan<char> host, out bool isIPv4)
    {
        isIPv4 = false;
        if (host.IsEmpty || host.Length > 253)
        {
            return false;
        }
        var labels = 0;
        var lastLabelStart = 0;
        foreach (var range in host.Split('.'))
        {
            var label = host[range];
            if (label.IsEmpty || label.Length > 63 || label[0] == '-' || label[^1] == '-'
                || label.StartsWith("xn--", StringComparison.Ordinal))
            {
                return false;
            }
            labels++;
            lastLabelStart = range.Start.Value;
        }
        if (!char.IsAsciiDigit(host[lastLabelStart]))
        {
            return true;
        }
        isIPv4 = labels == 4 && IsCanonicalQuad(host);
        return isIPv4;
    }

    /// <summary>Four decimal octets of 0-255 without leading zeros (RFC 3986 section 3.2.2 dec-octet).</summary>
    private static bool IsCanonicalQuad(ReadOnlySpan<char> host)
    {
        foreach (var range in host.Split('.'))
        {
            var octet = host[range];
            if (octet.Length > 3 || octet.ContainsAnyExceptInRange('0', '9') || octet[0] == '0' && octet.Length > 1)
            {
                return false;
            }
            var value = 0;
            foreach (var digit in octet)
            {
                value = value * 10 + (digit - '0');
            }
            if (value > 255)
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>A "." or ".." segment (or any all-dots one), which Uri removes (RFC 3986 section 5.2.4).</summary>
    private static bool HasDotSegment(ReadOnlySpan<char> path)
    {
        while (path.IndexOf("/.", StringComparison.Ordinal) is var slash and >= 0)
        {
            path = path[(slash + 1)..];
            var end = path.IndexOf('/');
            var segment = end < 0 ? path : path[..end];
            if (!segment.ContainsAnyExcept('.'))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>Slices of the address: what <see cref="Uri.IdnHost"/>, <see cref="Uri.Authority"/>,
    /// <see cref="Uri.PathAndQuery"/> and <see cref="Uri.Port"/> give for it.</summary>
    internal readonly ref struct Parts(ReadOnlySpan<char> host, ReadOnlySpan<char> authority, ReadOnlySpan<char> pathAndQuery, int port, bool isIPv4)
    {
        public ReadOnlySpan<char> Host { get; } = host;
        public ReadOnlySpan<char> Authority { get; } = authority;
        public ReadOnlySpan<char> PathAndQuery { get; } = pathAndQuery;
        public int Port { get; } = port;
        public bool IsIPv4 { get; } = isIPv4;
    }
}
