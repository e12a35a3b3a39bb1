using System.Net;
using System.Security.Cryptography;
using System.Text.Json;
using Microsoft.IdentityModel.JsonWebTokens;
using Microsoft.IdentityModel.Tokens;

namespace ChatBackend.Tests;

/// <summary>/demo-token: the demo's stand-in identity provider, and the welcome line that names the user.</summary>
public sealed class DemoTokenTests : IDisposable
{
    private readonly byte[] _secret = RandomNumberGenerator.GetBytes(32);
    private readonly string _keyFile = Path.Combine(Path.GetTempPath(), $"demo-jwt-{Guid.NewGuid():N}.key");

    public DemoTokenTests() => File.WriteAllText(_keyFile, Convert.ToBase64String(_secret) + "\n");

    public void Dispose() => File.Delete(_keyFile);

    [Fact]
    public async Task A_token_validates_with_the_secret_issuer_and_audience_and_carries_the_name()
    {
        await using var backend = await RunningBackend.StartAsync(
            "--DemoToken:KeyFile", _keyFile, "--DemoToken:Issuer", "https://id.demo", "--DemoToken:Audience", "chat", "--DemoToken:LifetimeSeconds", "120");
        using var http = backend.CreateHttpClient();
        using var response = await http.GetAsync("demo-token?name=alice");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(response.Headers.CacheControl?.NoStore, "a token response must not be cached (RFC 6749 §5.1)");
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("Bearer", body.RootElement.GetProperty("token_type").GetString());
        Assert.Equal(120, body.RootElement.GetProperty("expires_in").GetInt32());
        var token = body.RootElement.GetProperty("access_token").GetString();

        // Checked as the gateway checks it: signature, issuer, audience, lifetime.
        var result = await new JsonWebTokenHandler().ValidateTokenAsync(token, new TokenValidationParameters
        {
            IssuerSigningKey = new SymmetricSecurityKey(_secret),
            ValidIssuer = "https://id.demo",
            ValidAudience = "chat",
            ValidAlgorithms = [SecurityAlgorithms.HmacSha256],
            RequireExpirationTime = true,
        });
        Assert.True(result.IsValid, result.Exception?.Message);
        var jwt = (JsonWebToken)result.SecurityToken;
        Assert.Equal("alice", jwt.Subject);
        Assert.Equal("alice", jwt.GetClaim("name").Value);
        Assert.InRange(jwt.ValidTo - jwt.ValidFrom, TimeSpan.FromSeconds(119), TimeSpan.FromSeconds(121));

        // And not with another secret: the test would pass for an unsigned token otherwise.
        var forged = await new JsonWebTokenHandler().ValidateTokenAsync(token, new TokenValidationParameters
        {
            IssuerSigningKey = new SymmetricSecurityKey(RandomNumberGenerator.GetBytes(32)),
            ValidIssuer = "https://id.demo",
            ValidAudience = "chat",
        });
        Assert.False(forged.IsValid);
    }

    [Theory]
    [InlineData("demo-token")]
    [InlineData("demo-token?name=")]
    [InlineData("demo-token?name=a%20b")]
    [InlineData("demo-token?name=%C3%A9")]
    [InlineData("demo-token?name=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa")]
    public async Task A_missing_or_unusual_name_gets_400(string path)
    {
        await using var backend = await RunningBackend.StartAsync("--DemoToken:KeyFile", _keyFile);
        using var http = backend.CreateHttpClient();
        using var response = await http.GetAsync(path);

        Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
    }

    [Fact]
    public async Task Without_a_key_file_the_endpoint_is_off()
    {
        await using var backend = await RunningBackend.StartAsync();
        using var http = backend.CreateHttpClient();
        using var response = await http.GetAsync("demo-token?name=alice");

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    [Fact]
    public void A_short_secret_fails_the_start()
    {
        File.WriteAllText(_keyFile, Convert.ToBase64String(new byte[16]));
        var error = Assert.Throws<InvalidOperationException>(() => ChatBackendApp.Build(["--urls", "http://127.0.0.1:0", "--DemoToken:KeyFile", _keyFile]));
        Assert.Contains("256", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_welcome_names_the_user_the_gateway_vouched_for()
    {
        await using var backend = await RunningBackend.StartAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var named = await backend.ConnectAsync("chat/who", timeout.Token, options => options.SetRequestHeader("X-User-Id", "alice"));
        using var anonymous = await backend.ConnectAsync("chat/who", timeout.Token);

        Assert.Equal("""{"type":"welcome","backend":"t1","room":"who","members":1,"user":"alice"}""", (await named.ReceiveWholeAsync(timeout.Token)).Text);
        Assert.Equal("""{"type":"welcome","backend":"t1","room":"who","members":2}""", (await anonymous.ReceiveWholeAsync(timeout.Token)).Text);
    }
}
