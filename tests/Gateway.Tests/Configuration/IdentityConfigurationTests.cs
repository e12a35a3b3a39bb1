using System.Security.Cryptography;
using Gateway.Configuration;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Configuration;

/// <summary>A policy's Identity section: its keys bind, key files resolve against the file's directory, and each mistake names its key.</summary>
public sealed class IdentityConfigurationTests : IDisposable
{
    private const string Key = "Gateway:WebSocketPolicies:chat:Identity";
    private readonly string _directory = Directory.CreateTempSubdirectory("identity-config-").FullName;
    private readonly string _rsa;

    public IdentityConfigurationTests()
    {
        using var rsa = RSA.Create(2048);
        _rsa = Path.Combine(_directory, "idp.pem");
        File.WriteAllText(_rsa, rsa.ExportSubjectPublicKeyInfoPem());
    }

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    private (string, string)[] Valid(params (string Key, string Value)[] more) =>
    [
        ($"{Key}:SigningKeys:0", _rsa),
        ($"{Key}:Issuer", "https://id.example.com"),
        ($"{Key}:Audience", "chat"),
        .. more,
    ];

    [Fact]
    public void The_issues_example_binds()
    {
        var options = InMemoryGatewayOptions.Load(Valid(
            ($"{Key}:Required", "true"),
            ($"{Key}:TokenSources:0", "Header"),
            ($"{Key}:TokenSources:1", "Query:access_token"),
            ($"{Key}:TokenSources:2", "Cookie:token"),
            ($"{Key}:TokenSources:3", "Subprotocol"),
            ($"{Key}:JwksUrl", "https://id.example.com/.well-known/jwks.json"),
            ($"{Key}:ClaimHeaders:sub", "X-User-Id"),
            ($"{Key}:OnExpiry", "Close"),
            ($"{Key}:QueryToken", "Redact"),
            ("Gateway:WebSocketPolicies:chat:Limits:MaxConnectionsPerUser", "3")));
        var policy = options.WebSocketPolicies["chat"];
        var identity = policy.Identity;
        Assert.True(identity.Enabled);
        Assert.Equal(["Header", "Query:access_token", "Cookie:token", "Subprotocol"], identity.TokenSources);
        Assert.Equal("X-User-Id", identity.ClaimHeaders["sub"]);
        Assert.Equal(TokenExpiryAction.Close, identity.OnExpiry);
        Assert.Equal(QueryTokenHandling.Redact, identity.QueryToken);
        Assert.Equal(3, policy.Limits.MaxConnectionsPerUser);
    }

    [Fact]
    public void Identity_is_off_by_default_and_key_files_resolve_against_the_configuration_file()
    {
        Assert.False(InMemoryGatewayOptions.Load(("Gateway:WebSocketPolicies:chat:Limits:MaxConnections", "1")).WebSocketPolicies["chat"].Identity.Enabled);
        var error = Assert.Throws<GatewayConfigurationException>(() => InMemoryGatewayOptions.Load(
            ($"{Key}:SigningKeys:0", "keys/idp.pem"), ($"{Key}:Issuer", "i"), ($"{Key}:Audience", "a")));
        Assert.Equal($"{Key}:SigningKeys:0", error.Key);
        Assert.Contains("/etc/gateway/keys/idp.pem", error.Problem);
    }

    public static TheoryData<string, string, string, string> Mistakes() => new()
    {
        { "TokenSources:0", "Body", "TokenSources:0", "not a token source" },
        { "TokenSources:0", "Query", "TokenSources:0", "needs the parameter's name" },
        { "TokenSources:0", "Header:X-Token", "TokenSources:0", "takes no name" },
        { "Issuer", "", "Issuer", "is required" },
        { "Audience", "", "Audience", "is required" },
        { "JwksUrl", "id.example.com/jwks", "JwksUrl", "not an absolute" },
        { "JwksRefreshInterval", "00:00:01", "JwksRefreshInterval", "at least" },
        { "ClaimHeaders:sub", "Host", "ClaimHeaders:sub", "the handshake or the proxy itself uses" },
        { "ClaimHeaders:sub", "X User", "ClaimHeaders:sub", "not a header name" },
        { "OnExpiry", "Sometimes", "OnExpiry", "not one of Close, KeepOpen" },
        { "QueryToken", "Hide", "QueryToken", "not one of Remove, Redact" },
        { "ClockSkew", "-00:00:01", "ClockSkew", "must not be negative" },
    };

    [Theory]
    [MemberData(nameof(Mistakes))]
    public void A_mistake_names_its_key(string key, string value, string reported, string problem)
    {
        var values = Valid().Where(v => v.Item1 != $"{Key}:{key}").Append(($"{Key}:{key}", value)).ToArray();
        var error = Assert.Throws<GatewayConfigurationException>(() => InMemoryGatewayOptions.Load(values));
        Assert.Equal($"{Key}:{reported}", error.Key);
        Assert.Contains(problem, error.Problem);
    }

    [Fact]
    public void Claim_settings_without_keys_say_keys_are_needed()
    {
        var error = Assert.Throws<GatewayConfigurationException>(() => InMemoryGatewayOptions.Load(($"{Key}:ClaimHeaders:sub", "X-User-Id")));
        Assert.Equal($"{Key}:SigningKeys", error.Key);
        Assert.Contains("SigningKeys (key files) or JwksUrl", error.Problem);
    }

    [Fact]
    public void Key_files_must_be_public_keys_or_long_enough_secrets()
    {
        using var rsa = RSA.Create(2048);
        var privateKey = Path.Combine(_directory, "private.pem");
        File.WriteAllText(privateKey, rsa.ExportPkcs8PrivateKeyPem());
        var shortSecret = Path.Combine(_directory, "short.key");
        File.WriteAllText(shortSecret, Convert.ToBase64String(new byte[16]));
        var notBase64 = Path.Combine(_directory, "text.key");
        File.WriteAllText(notBase64, "hello world!");

        foreach (var (file, problem) in new[] { (privateKey, "private key"), (shortSecret, "at least 256 bits"), (notBase64, "neither a PEM public key nor a base64") })
        {
            var error = Assert.Throws<GatewayConfigurationException>(() => InMemoryGatewayOptions.Load(
                ($"{Key}:SigningKeys:0", file), ($"{Key}:Issuer", "i"), ($"{Key}:Audience", "a")));
            Assert.Equal($"{Key}:SigningKeys:0", error.Key);
            Assert.Contains(problem, error.Problem);
        }

        var secret = Path.Combine(_directory, "hs256.key");
        File.WriteAllText(secret, Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)) + "\n");
        using var ec = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var ecFile = Path.Combine(_directory, "ec.pem");
        File.WriteAllText(ecFile, ec.ExportSubjectPublicKeyInfoPem());
        InMemoryGatewayOptions.Load(($"{Key}:SigningKeys:0", secret), ($"{Key}:SigningKeys:1", ecFile), ($"{Key}:Issuer", "i"), ($"{Key}:Audience", "a"));
    }

    [Fact]
    public void MaxConnectionsPerUser_must_not_be_negative()
    {
        var error = Assert.Throws<GatewayConfigurationException>(() => InMemoryGatewayOptions.Load(("Gateway:WebSocketPolicies:chat:Limits:MaxConnectionsPerUser", "-1")));
        Assert.Equal("Gateway:WebSocketPolicies:chat:Limits:MaxConnectionsPerUser", error.Key);
    }
}
