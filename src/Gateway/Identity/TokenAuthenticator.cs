using System.Text;
using Gateway.Configuration;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Gateway.Identity;

/// <summary>
/// One policy's identity rules, compiled: where tokens come from, the keys and checks they must pass, and the claims
/// that go to the backend as headers. The token is validated by IdentityModel's <see cref="JsonWebTokenHandler"/>, the
/// validator behind ASP.NET Core's JwtBearer, called here directly: the gate runs inside YARP's pipeline per WebSocket
/// policy, after the route is known, and must refuse through the gate's own counted, throttled refusals and edit the
/// request (forged headers out, claim headers in, the token out of the subprotocols and the query) before it is forwarded.
/// ASP.NET Core's authentication middleware and YARP's route <c>AuthorizationPolicy</c> run per endpoint, before YARP's
/// pipeline, with their own challenge responses: they could do neither, and the gateway does not add them.
/// </summary>
internal sealed class TokenAuthenticator
{
    private static readonly JsonWebTokenHandler Handler = new() { MapInboundClaims = false };

    private readonly IdentityOptions _options;
    private readonly TokenSource[] _sources;
    private readonly KeyValuePair<string, string>[] _claimHeaders;
    private readonly KeyValuePair<string, string>[] _requiredClaims;
    private readonly IReadOnlyList<SecurityKey> _fileKeys;
    private readonly JwksKeys? _jwks;
    private readonly TokenValidationParameters _parameters;

    public TokenAuthenticator(IdentityOptions options, IReadOnlyList<SecurityKey> fileKeys, JwksKeys? jwks)
    {
        _options = options;
        _sources = (options.TokenSources.Count == 0 ? ["Header"] : options.TokenSources)
            .Select(text => TokenSource.TryParse(text, out var source, out var error) ? source : throw new FormatException(error))
            .ToArray();
        _claimHeaders = options.ClaimHeaders.ToArray();
        _requiredClaims = options.RequiredClaims.ToArray();
        _fileKeys = fileKeys;
        _jwks = jwks;
        _parameters = new TokenValidationParameters
        {
            ValidIssuer = options.Issuer,
            ValidAudience = options.Audience,
            ValidateIssuer = options.Issuer is not null,
            ValidateAudience = options.Audience is not null,
            ValidateLifetime = true,
            // A token without exp would live as long as the tunnel: OnExpiry needs one, and RFC 8725 §3.10 advises it.
            RequireExpirationTime = true,
            RequireSignedTokens = true,
            ClockSkew = options.ClockSkew,
            IssuerSigningKeyResolver = (_, _, _, _) => CurrentKeys(),
        };
    }

    private IEnumerable<SecurityKey> CurrentKeys() => _jwks is null ? _fileKeys : _fileKeys.Concat(_jwks.Keys);

    /// <summary>
    /// Checks the handshake's token and edits the request for the backend. Forged claim headers and bearer subprotocols
    /// are removed and the query token handled whatever the outcome, so nothing the client sent under those names ever
    /// reaches the backend.
    /// </summary>
    public async ValueTask<AuthenticationOutcome> AuthenticateAsync(HttpContext context)
    {
        var request = context.Request;
        RemoveClaimHeaders(request);
        string? token = null;
        TokenSource from = default;
        foreach (var source in _sources)
        {
            if (TokenCarriers.Read(request, source) is { } found)
            {
                (token, from) = (found, source);
                break;
            }
        }
        TokenCarriers.RemoveBearerSubprotocols(request);
        foreach (var source in _sources)
        {
            if (source.Carrier == TokenCarrier.Query)
            {
                TokenCarriers.StripQuery(request, source.Name!, _options.QueryToken == QueryTokenHandling.Redact);
            }
        }

        if (token is null)
        {
            return _options.Required
                ? new AuthenticationOutcome(AuthenticationStatus.Unauthenticated, $"no token ({string.Join(", ", _sources)})")
                : new AuthenticationOutcome(AuthenticationStatus.Anonymous);
        }

        if (_jwks is not null)
        {
            await _jwks.GetAsync(context.RequestAborted).ConfigureAwait(false);
        }
        var result = await Handler.ValidateTokenAsync(token, _parameters).ConfigureAwait(false);
        if (!result.IsValid && _jwks is not null && KeyIdOf(token) is { } kid && !_jwks.Holds(kid)
            && await _jwks.RefreshForUnknownKeyAsync(context.RequestAborted).ConfigureAwait(false))
        {
            // The issuer may have rotated its keys since the last fetch.
            result = await Handler.ValidateTokenAsync(token, _parameters).ConfigureAwait(false);
        }
        if (!result.IsValid || result.SecurityToken is not JsonWebToken jwt)
        {
            return new AuthenticationOutcome(AuthenticationStatus.Unauthenticated, $"{Why(result.Exception)} (token from {from})") { TokenPresented = true };
        }

        foreach (var (claim, value) in _requiredClaims)
        {
            if (!jwt.Claims.Any(c => c.Type == claim && c.Value == value))
            {
                return new AuthenticationOutcome(AuthenticationStatus.Forbidden, $"the token lacks {claim}={value}", jwt.Subject) { TokenPresented = true };
            }
        }
        foreach (var (claim, header) in _claimHeaders)
        {
            if (ClaimValue(jwt, claim) is { } value)
            {
                request.Headers[header] = value;
            }
        }
        DateTimeOffset? closesAt = _options.OnExpiry == TokenExpiryAction.Close && jwt.ValidTo > DateTime.MinValue
            ? new DateTimeOffset(jwt.ValidTo, TimeSpan.Zero) + _options.ClockSkew
            : null;
        return new AuthenticationOutcome(AuthenticationStatus.Authenticated, Subject: string.IsNullOrEmpty(jwt.Subject) ? null : jwt.Subject, ClosesAt: closesAt)
        {
            TokenPresented = true,
        };
    }

    /// <summary>Removes the headers claims are written to from what the client sent, so that it cannot forge them.</summary>
    public void RemoveClaimHeaders(HttpRequest request)
    {
        foreach (var (_, header) in _claimHeaders)
        {
            request.Headers.Remove(header);
        }
    }

    private static string? KeyIdOf(string token)
    {
        try
        {
            return new JsonWebToken(token).Kid;
        }
        catch (Exception ex) when (ex is ArgumentException or SecurityTokenMalformedException)
        {
            return null;
        }
    }

    /// <summary>
    /// A claim as one header value: array claims joined by commas (RFC 9110 §5.3). A value outside visible ASCII is
    /// percent-encoded (UTF-8), since header values on the way to the backend are ASCII and must hold no line breaks.
    /// </summary>
    private static string? ClaimValue(JsonWebToken jwt, string claim)
    {
        string? joined = null;
        foreach (var c in jwt.Claims)
        {
            if (c.Type == claim)
            {
                joined = joined is null ? c.Value : $"{joined}, {c.Value}";
            }
        }
        if (joined is null || Http.HttpSyntax.IsAsciiFieldValue(joined) && !joined.Contains('%'))
        {
            return joined;
        }
        var encoded = new StringBuilder(joined.Length * 3);
        foreach (var b in Encoding.UTF8.GetBytes(joined))
        {
            if (b is >= 0x20 and < 0x7F and not (byte)'%')
            {
                encoded.Append((char)b);
            }
            else
            {
                encoded.Append('%').Append(b.ToString("X2", System.Globalization.CultureInfo.InvariantCulture));
            }
        }
        return encoded.ToString();
    }

    /// <summary>A short reason for the log; never a stack trace, and never the token (IdentityModel's messages may quote it).</summary>
    private static string Why(Exception? error) => error switch
    {
        SecurityTokenExpiredException => "token expired",
        SecurityTokenNotYetValidException => "token not yet valid",
        SecurityTokenNoExpirationException => "token has no expiry (exp)",
        SecurityTokenInvalidAudienceException => "wrong audience",
        SecurityTokenInvalidIssuerException => "wrong issuer",
        SecurityTokenSignatureKeyNotFoundException => "no known key verifies the signature",
        SecurityTokenInvalidSignatureException => "bad signature",
        SecurityTokenInvalidLifetimeException => "invalid lifetime",
        SecurityTokenMalformedException or ArgumentException => "malformed token",
        null => "invalid token",
        _ => $"invalid token ({error.GetType().Name})",
    };
}
