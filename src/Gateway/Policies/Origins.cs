namespace Gateway.Policies;

/// <summary>
/// Which browser origins may open WebSockets on a route: the defence against Cross-Site WebSocket Hijacking,
/// since browsers apply no CORS to WebSockets and send the page's <c>Origin</c> instead (RFC 6455 section 10.2).
/// Matching works on the header in place; nothing is allocated per request.
/// </summary>
internal sealed class OriginAllowList
{
    public const string Any = "*";
    public const string Null = "null";

    private readonly OriginPattern[] _patterns;
    private readonly bool _any;
    private readonly bool _null;

    private OriginAllowList(OriginPattern[] patterns, bool any, bool allowsNull)
    {
        _patterns = patterns;
        _any = any;
        _null = allowsNull;
    }

    /// <summary>No entries: only the origin of the host the client addressed.</summary>
    public bool SameOriginOnly => _patterns.Length == 0 && !_any && !_null;

    /// <summary>Builds the list from configuration entries; <see cref="TryParseEntry"/> has already vetted them at load.</summary>
    public static OriginAllowList Create(IReadOnlyList<string> entries)
    {
        var patterns = new List<OriginPattern>();
        var any = false;
        var allowsNull = false;
        foreach (var entry in entries)
        {
            if (!TryParseEntry(entry, out var pattern, out var error))
            {
                throw new FormatException(error);
            }
            switch (pattern)
            {
                case null when entry.Trim() == Any:
                    any = true;
                    break;
                case null:
                    allowsNull = true;
                    break;
                default:
                    patterns.Add(pattern);
                    break;
            }
        }
        return new OriginAllowList(patterns.ToArray(), any, allowsNull);
    }

    /// <summary>
    /// Parses one configured entry: <c>*</c>, <c>null</c> (pattern is null for both), <c>scheme://host[:port]</c>
    /// or <c>scheme://*.domain[:port]</c>. On failure, <paramref name="error"/> says what is wrong.
    /// </summary>
    public static bool TryParseEntry(string entry, out OriginPattern? pattern, out string? error)
    {
        pattern = null;
        error = null;
        var text = entry.Trim();
        if (text is Any || string.Equals(text, Null, StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }
        if (!Origin.TryParse(text, out var origin))
        {
            error = $"'{entry}' is not an origin: expected scheme://host[:port] (no path, no trailing slash), scheme://*.domain[:port], 'null' or '*'";
            return false;
        }
        var host = origin.Host;
        var wildcard = host.StartsWith("*.", StringComparison.Ordinal);
        if (wildcard ? host[2..].Contains('*') || host.Length == 2 : host.Contains('*'))
        {
            error = $"'{entry}': a wildcard must be the whole first label, as in https://*.example.com";
            return false;
        }
        pattern = new OriginPattern(
            origin.Scheme.ToString().ToLowerInvariant(),
            // A wildcard keeps its leading dot: '*.example.com' matches hosts that end in '.example.com'.
            (wildcard ? host[1..] : host).ToString().ToLowerInvariant(),
            origin.Port,
            wildcard);
        return true;
    }

    /// <summary>
    /// Whether <paramref name="originHeader"/> (the request's one Origin value) may open a WebSocket when the client
    /// addressed <paramref name="hostHeader"/>.
    /// </summary>
    public bool Allows(string originHeader, string? hostHeader)
    {
        // RFC 6454 section 7.1: an opaque origin (sandboxed frame, file:, data:) is serialized as "null" and can be
        // sent by any page, so it never passes unless the operator lists it.
        if (string.Equals(originHeader, Null, StringComparison.Ordinal))
        {
            return _null;
        }
        if (!Origin.TryParse(originHeader, out var origin) || origin.Host.Contains('*'))
        {
            return false;
        }
        if (_any)
        {
            return true;
        }
        if (SameOriginOnly)
        {
            return IsSameOrigin(origin, hostHeader);
        }
        foreach (var pattern in _patterns)
        {
            if (pattern.Matches(origin))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>
    /// Host and port of the page equal the host and port the client addressed (its Host header, which a browser
    /// sets and a page cannot). The scheme is not compared, as in gorilla/websocket's default check: behind a TLS
    /// offloader, https pages reach a plain listener with the same Host.
    /// </summary>
    private static bool IsSameOrigin(in Origin origin, string? hostHeader)
    {
        if (hostHeader is null || !Origin.TrySplitAuthority(hostHeader, out var host, out var port))
        {
            return false;
        }
        // A Host without a port means the scheme's default port: the page's origin then carries none either.
        var originPort = origin.Port == Origin.DefaultPort(origin.Scheme) ? 0 : origin.Port;
        var hostPort = port == Origin.DefaultPort(origin.Scheme) ? 0 : port;
        return originPort == hostPort && host.Equals(origin.Host, StringComparison.OrdinalIgnoreCase);
    }
}

/// <summary>One configured origin: exact, or a wildcard for the subdomains of <see cref="Host"/> (which then starts with a dot).</summary>
internal sealed class OriginPattern
{
    public OriginPattern(string scheme, string host, int port, bool wildcard)
    {
        Scheme = scheme;
        Host = host;
        Port = port;
        Wildcard = wildcard;
    }

    public string Scheme { get; }

    public string Host { get; }

    /// <summary>The effective port: the one written, or the scheme's default.</summary>
    public int Port { get; }

    public bool Wildcard { get; }

    public bool Matches(in Origin origin)
    {
        if (origin.Port != Port || !origin.Scheme.Equals(Scheme, StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }
        // Host names compare case-insensitively (RFC 4343). A wildcard needs at least one more label in front:
        // '.example.com' matches 'a.example.com', never 'example.com', 'evil-example.com' or 'example.com.evil.net'.
        return Wildcard
            ? origin.Host.Length > Host.Length && origin.Host.EndsWith(Host, StringComparison.OrdinalIgnoreCase)
            : origin.Host.Equals(Host, StringComparison.OrdinalIgnoreCase);
    }
}

/// <summary>An origin as RFC 6454 section 6.2 serializes it: <c>scheme "://" host [ ":" port ]</c>, viewed in place.</summary>
internal readonly ref struct Origin
{
    private Origin(ReadOnlySpan<char> scheme, ReadOnlySpan<char> host, int port)
    {
        Scheme = scheme;
        Host = host;
        Port = port;
    }

    public ReadOnlySpan<char> Scheme { get; }

    /// <summary>The host as written; an IPv6 literal keeps its brackets.</summary>
    public ReadOnlySpan<char> Host { get; }

    /// <summary>The effective port: the one written, else the scheme's default, else 0.</summary>
    public int Port { get; }

    public static int DefaultPort(ReadOnlySpan<char> scheme) =>
        scheme.Equals("https", StringComparison.OrdinalIgnoreCase) || scheme.Equals("wss", StringComparison.OrdinalIgnoreCase) ? 443
        : scheme.Equals("http", StringComparison.OrdinalIgnoreCase) || scheme.Equals("ws", StringComparison.OrdinalIgnoreCase) ? 80
        : 0;

    public static bool TryParse(ReadOnlySpan<char> text, out Origin origin)
    {
        origin = default;
        var separator = text.IndexOf("://", StringComparison.Ordinal);
        if (separator <= 0)
        {
            return false;
        }
        var scheme = text[..separator];
        // RFC 3986 section 3.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
        if (!char.IsAsciiLetter(scheme[0]) || scheme.ContainsAnyExcept(SchemeCharacters))
        {
            return false;
        }
        if (!TrySplitAuthority(text[(separator + 3)..], out var host, out var port))
        {
            return false;
        }
        origin = new Origin(scheme, host, port == 0 ? DefaultPort(scheme) : port);
        return true;
    }

    /// <summary>Splits <c>host[:port]</c> (a Host header, or an origin's authority); port is 0 when absent.</summary>
    public static bool TrySplitAuthority(ReadOnlySpan<char> authority, out ReadOnlySpan<char> host, out int port)
    {
        port = 0;
        ReadOnlySpan<char> portText;
        if (authority.StartsWith('['))
        {
            var close = authority.IndexOf(']');
            host = close < 0 ? default : authority[..(close + 1)];
            if (close < 2 || authority[1..close].ContainsAnyExcept(Ipv6Characters))
            {
                return false;
            }
            var rest = authority[(close + 1)..];
            if (rest.IsEmpty)
            {
                return true;
            }
            if (rest[0] != ':')
            {
                return false;
            }
            portText = rest[1..];
        }
        else
        {
            var colon = authority.IndexOf(':');
            host = colon < 0 ? authority : authority[..colon];
            // Letters, digits, '-', '.', '_' and a '*' for configured wildcards; no '/', '?', '#', '@' or spaces:
            // an origin has no path, query or user information.
            if (host.IsEmpty || host.ContainsAnyExcept(HostCharacters) || host[0] == '.' || host.IndexOf("..", StringComparison.Ordinal) >= 0)
            {
                return false;
            }
            if (colon < 0)
            {
                return true;
            }
            portText = authority[(colon + 1)..];
        }
        return portText.Length is > 0 and <= 5 && !portText.ContainsAnyExceptInRange('0', '9')
            && int.TryParse(portText, out port) && port is > 0 and <= 65535;
    }

    private static readonly System.Buffers.SearchValues<char> SchemeCharacters =
        System.Buffers.SearchValues.Create("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.");

    private static readonly System.Buffers.SearchValues<char> HostCharacters =
        System.Buffers.SearchValues.Create("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._*");

    private static readonly System.Buffers.SearchValues<char> Ipv6Characters =
        System.Buffers.SearchValues.Create("abcdefABCDEF0123456789:.%");
}
