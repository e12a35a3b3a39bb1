using Gateway.Configuration;

namespace Gateway.Identity;

/// <summary>Checks a policy's <c>Identity</c> section at load: one line naming the key and what is wrong.</summary>
internal static class IdentityValidation
{
    /// <summary>Headers a claim may not be written to: the handshake's own, and those that carry credentials or routing.</summary>
    private static readonly HashSet<string> ReservedHeaders = new(StringComparer.OrdinalIgnoreCase)
    {
        "Host", "Connection", "Upgrade", "Content-Length", "Transfer-Encoding", "Authorization", "Cookie", "Origin",
        "Sec-WebSocket-Key", "Sec-WebSocket-Version", "Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions",
        "X-Forwarded-For", "X-Forwarded-Proto", "X-Forwarded-Host", "Forwarded", "traceparent", "tracestate",
    };

    public static void Validate(string key, IdentityOptions identity)
    {
        if (!identity.Enabled)
        {
            if (identity.TokenSources.Count > 0 || identity.ClaimHeaders.Count > 0 || identity.RequiredClaims.Count > 0
                || identity.Issuer is not null || identity.Audience is not null)
            {
                throw new GatewayConfigurationException($"{key}:SigningKeys", "identity needs keys to check tokens with: set SigningKeys (key files) or JwksUrl");
            }
            return;
        }
        for (var i = 0; i < identity.TokenSources.Count; i++)
        {
            if (!TokenSource.TryParse(identity.TokenSources[i], out _, out var error))
            {
                throw new GatewayConfigurationException($"{key}:TokenSources:{i}", error!);
            }
        }
        for (var i = 0; i < identity.SigningKeys.Count; i++)
        {
            try
            {
                SigningKeyFiles.Load(identity.SigningKeys[i]);
            }
            catch (InvalidDataException ex)
            {
                throw new GatewayConfigurationException($"{key}:SigningKeys:{i}", ex.Message);
            }
        }
        if (!string.IsNullOrWhiteSpace(identity.JwksUrl)
            && (!Uri.TryCreate(identity.JwksUrl, UriKind.Absolute, out var jwks) || jwks.Scheme is not ("https" or "http")))
        {
            throw new GatewayConfigurationException($"{key}:JwksUrl", $"'{identity.JwksUrl}' is not an absolute https:// (or http://) URL");
        }
        if (identity.JwksRefreshInterval < JwksKeys.MinRefreshGap)
        {
            throw new GatewayConfigurationException($"{key}:JwksRefreshInterval", $"must be at least {JwksKeys.MinRefreshGap:c}");
        }
        if (string.IsNullOrWhiteSpace(identity.Issuer))
        {
            throw new GatewayConfigurationException($"{key}:Issuer", "is required with identity on: the iss every token must carry (RFC 7519 section 4.1.1)");
        }
        if (string.IsNullOrWhiteSpace(identity.Audience))
        {
            throw new GatewayConfigurationException($"{key}:Audience",
                "is required with identity on: the aud every token must carry, or tokens the issuer made for other services pass (RFC 7519 section 4.1.3)");
        }
        if (identity.ClockSkew < TimeSpan.Zero)
        {
            throw new GatewayConfigurationException($"{key}:ClockSkew", "must not be negative");
        }
        var headers = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (claim, header) in identity.ClaimHeaders)
        {
            var at = $"{key}:ClaimHeaders:{claim}";
            if (!Http.HttpSyntax.IsToken(header))
            {
                throw new GatewayConfigurationException(at, $"'{header}' is not a header name");
            }
            if (ReservedHeaders.Contains(header) || header.StartsWith("Sec-", StringComparison.OrdinalIgnoreCase))
            {
                throw new GatewayConfigurationException(at, $"'{header}' is a header the handshake or the proxy itself uses: pick another name, such as X-User-Id");
            }
            if (!headers.Add(header))
            {
                throw new GatewayConfigurationException(at, $"'{header}' is already the header of another claim");
            }
        }
    }
}
