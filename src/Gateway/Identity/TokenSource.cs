namespace Gateway.Identity;

internal enum TokenCarrier
{
    /// <summary><c>Authorization: Bearer TOKEN</c> (RFC 6750 §2.1): native clients; browsers cannot set it on a WebSocket.</summary>
    Header,

    /// <summary>A query parameter (RFC 6750 §2.3): what browsers can do, and what leaks into logs unless removed.</summary>
    Query,

    /// <summary>A cookie the page's site set.</summary>
    Cookie,

    /// <summary>The Kubernetes-style subprotocol <c>base64url.bearer.authorization.k8s.io.TOKEN</c>.</summary>
    Subprotocol,
}

/// <summary>One place a token may be: a carrier and, for the query and cookie, the parameter's name.</summary>
internal readonly record struct TokenSource(TokenCarrier Carrier, string? Name)
{
    /// <summary>
    /// Parses <c>Header</c>, <c>Query:NAME</c>, <c>Cookie:NAME</c> or <c>Subprotocol</c>. Configuration binding gives
    /// the whole entry as one string (the colon is not a key separator inside a list value).
    /// </summary>
    public static bool TryParse(string? text, out TokenSource source, out string? error)
    {
        source = default;
        error = null;
        var entry = text?.Trim() ?? string.Empty;
        var colon = entry.IndexOf(':');
        var kind = colon < 0 ? entry : entry[..colon];
        var name = colon < 0 ? null : entry[(colon + 1)..].Trim();
        if (!Enum.TryParse<TokenCarrier>(kind, ignoreCase: true, out var carrier) || !Enum.IsDefined(carrier) || char.IsDigit(kind.FirstOrDefault()))
        {
            error = $"'{text}' is not a token source: expected Header, Query:NAME, Cookie:NAME or Subprotocol";
            return false;
        }
        var named = carrier is TokenCarrier.Query or TokenCarrier.Cookie;
        if (named && string.IsNullOrEmpty(name))
        {
            error = $"'{text}': {carrier} needs the parameter's name, as in {carrier}:access_token";
            return false;
        }
        if (!named && name is not null)
        {
            error = $"'{text}': {carrier} takes no name";
            return false;
        }
        if (named && !Http.HttpSyntax.IsToken(name))
        {
            error = $"'{text}': '{name}' is not a {carrier.ToString().ToLowerInvariant()} name";
            return false;
        }
        source = new TokenSource(carrier, name);
        return true;
    }

    public override string ToString() => Name is null ? Carrier.ToString() : $"{Carrier}:{Name}";
}
