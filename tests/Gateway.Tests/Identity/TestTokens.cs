using System.Security.Cryptography;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace Gateway.Tests.Identity;

/// <summary>
/// An identity provider of the test's own: an RSA, an EC and an HMAC key made at start, their public halves (and the
/// shared secret) written to files the gateway's <c>SigningKeys</c> name, and tokens signed with them.
/// </summary>
public sealed class TestTokens : IDisposable
{
    public const string Issuer = "https://id.test";
    public const string Audience = "chat";

    private readonly RSA _rsa = RSA.Create(2048);
    private readonly ECDsa _ec = ECDsa.Create(ECCurve.NamedCurves.nistP256);
    private readonly byte[] _secret = RandomNumberGenerator.GetBytes(32);
    private readonly RSA _stranger = RSA.Create(2048);

    public TestTokens()
    {
        Directory = System.IO.Directory.CreateTempSubdirectory("identity-keys-").FullName;
        RsaPublicKeyFile = Write("idp-rsa.pem", _rsa.ExportSubjectPublicKeyInfoPem());
        EcPublicKeyFile = Write("idp-ec.pem", _ec.ExportSubjectPublicKeyInfoPem());
        SecretFile = Write("idp-hs256.key", Convert.ToBase64String(_secret));
        RsaKey = new RsaSecurityKey(_rsa) { KeyId = "rsa-1" };
        StrangerKey = new RsaSecurityKey(_stranger) { KeyId = "rsa-1" };
    }

    public string Directory { get; }

    public string RsaPublicKeyFile { get; }

    public string EcPublicKeyFile { get; }

    public string SecretFile { get; }

    public RsaSecurityKey RsaKey { get; }

    /// <summary>A key the gateway does not know, with the same key id as the real one: a forged signature.</summary>
    public RsaSecurityKey StrangerKey { get; }

    public enum Signer { Rsa, Ec, Hmac, Stranger }

    /// <summary>A token for <paramref name="subject"/>; every claim can be changed to make a bad one.</summary>
    public string Create(string subject = "alice", Signer signer = Signer.Rsa, string audience = Audience, string issuer = Issuer,
        TimeSpan? lifetime = null, DateTime? now = null, IDictionary<string, object>? claims = null)
    {
        var issuedAt = now ?? DateTime.UtcNow;
        var expires = issuedAt + (lifetime ?? TimeSpan.FromMinutes(10));
        var all = new Dictionary<string, object> { ["sub"] = subject };
        foreach (var (name, value) in claims ?? new Dictionary<string, object>())
        {
            all[name] = value;
        }
        var descriptor = new SecurityTokenDescriptor
        {
            Issuer = issuer,
            Audience = audience,
            Claims = all,
            IssuedAt = expires < issuedAt ? expires.AddMinutes(-5) : issuedAt,
            NotBefore = expires < issuedAt ? expires.AddMinutes(-5) : issuedAt,
            Expires = expires,
            SigningCredentials = signer switch
            {
                Signer.Rsa => new SigningCredentials(RsaKey, SecurityAlgorithms.RsaSha256),
                Signer.Ec => new SigningCredentials(new ECDsaSecurityKey(_ec), SecurityAlgorithms.EcdsaSha256),
                Signer.Hmac => new SigningCredentials(new SymmetricSecurityKey(_secret), SecurityAlgorithms.HmacSha256),
                _ => new SigningCredentials(StrangerKey, SecurityAlgorithms.RsaSha256),
            },
        };
        return new JsonWebTokenHandler().CreateToken(descriptor);
    }

    /// <summary>The RSA key's public half as a JSON Web Key Set (RFC 7517 §5), as an identity provider serves it.</summary>
    public string Jwks()
    {
        var jwk = JsonWebKeyConverter.ConvertFromRSASecurityKey(new RsaSecurityKey(_rsa.ExportParameters(false)) { KeyId = "rsa-1" });
        return $$"""{"keys":[{"kty":"RSA","use":"sig","alg":"RS256","kid":"{{jwk.Kid}}","n":"{{jwk.N}}","e":"{{jwk.E}}"}]}""";
    }

    private string Write(string name, string text)
    {
        var path = Path.Combine(Directory, name);
        File.WriteAllText(path, text);
        return path;
    }

    public void Dispose()
    {
        _rsa.Dispose();
        _ec.Dispose();
        _stranger.Dispose();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
