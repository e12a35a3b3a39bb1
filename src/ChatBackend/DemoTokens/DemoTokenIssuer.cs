using System.Security.Claims;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace ChatBackend.DemoTokens;

/// <summary>
/// Signs short-lived HS256 tokens (RFC 7519, RFC 7518 §3.2) for the demo, with the secret the gateway's demo policy
/// verifies with. A stand-in for an identity provider so the demo shows identity end to end; a real backend would
/// never hold the secret its edge verifies with, nor hand tokens to whoever asks.
/// </summary>
internal sealed class DemoTokenIssuer
{
    private readonly SigningCredentials _credentials;
    private readonly JsonWebTokenHandler _handler = new();

    private DemoTokenIssuer(byte[] secret, string issuer, string audience, TimeSpan lifetime)
    {
        _credentials = new SigningCredentials(new SymmetricSecurityKey(secret), SecurityAlgorithms.HmacSha256);
        Issuer = issuer;
        Audience = audience;
        Lifetime = lifetime;
    }

    public string Issuer { get; }

    public string Audience { get; }

    public TimeSpan Lifetime { get; }

    /// <summary>
    /// Null when <c>DemoToken:KeyFile</c> is not set: the endpoint is off unless the demo asks for it.
    /// A set but broken file fails the start, so a demo never runs with tokens nobody can verify.
    /// </summary>
    public static DemoTokenIssuer? FromConfiguration(IConfiguration configuration)
    {
        var keyFile = configuration["DemoToken:KeyFile"];
        if (string.IsNullOrWhiteSpace(keyFile))
        {
            return null;
        }

        var secret = ReadSecret(keyFile);
        var issuer = configuration["DemoToken:Issuer"] is { Length: > 0 } i ? i : "chat-demo";
        var audience = configuration["DemoToken:Audience"] is { Length: > 0 } a ? a : "chat";
        var seconds = configuration["DemoToken:LifetimeSeconds"] is { Length: > 0 } raw
            ? int.Parse(raw, System.Globalization.CultureInfo.InvariantCulture)
            : 600;
        if (seconds < 10)
        {
            throw new InvalidOperationException($"Configuration value 'DemoToken:LifetimeSeconds' must be at least 10, got {seconds}.");
        }

        return new DemoTokenIssuer(secret, issuer, audience, TimeSpan.FromSeconds(seconds));
    }

    /// <summary>A token whose <c>sub</c> and <c>name</c> are <paramref name="user"/>, valid from now for <see cref="Lifetime"/>.</summary>
    public string Create(string user, DateTime now)
    {
        var descriptor = new SecurityTokenDescriptor
        {
            Issuer = Issuer,
            Audience = Audience,
            Subject = new ClaimsIdentity([new Claim("sub", user), new Claim("name", user)]),
            IssuedAt = now,
            NotBefore = now,
            Expires = now + Lifetime,
            SigningCredentials = _credentials,
        };
        return _handler.CreateToken(descriptor);
    }

    private static byte[] ReadSecret(string path)
    {
        byte[] secret;
        try
        {
            secret = Convert.FromBase64String(File.ReadAllText(path).Trim());
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or FormatException)
        {
            throw new InvalidOperationException($"DemoToken:KeyFile '{path}' cannot be read as a base64 secret: {ex.Message}", ex);
        }

        // HS256 needs a key at least as long as its hash output (RFC 7518 §3.2), as the gateway also insists.
        if (secret.Length < 32)
        {
            throw new InvalidOperationException($"DemoToken:KeyFile '{path}' holds {secret.Length * 8} bits; HS256 needs at least 256.");
        }

        return secret;
    }
}
