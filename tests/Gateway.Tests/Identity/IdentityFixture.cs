using System.Text.Json.Nodes;
using Gateway.Tests.Handshake;
using Gateway.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Gateway.Tests.Identity;

/// <summary>
/// Two gateways (HTTP/1.1 upgrades on the lean path and on Kestrel's) in front of one <see cref="RawBackend"/>, which
/// records every request head it gets, with a route per identity policy, the access log captured, and a loopback
/// identity provider that serves the JSON Web Key Set of <see cref="TestTokens"/>.
/// <list type="bullet">
/// <item><c>/id</c>: all four carriers, keys from files (RSA, EC, HS256), sub and role as headers, a token required.</item>
/// <item><c>/opt</c>: the same with <c>Required: false</c>. <c>/redact</c>: the query token redacted, not removed.</item>
/// <item><c>/scoped</c>: a <c>scope</c> of <c>chat</c> required. <c>/peruser</c>: one tunnel per user.</item>
/// <item><c>/jwks</c>: keys from the JWKS URL only.</item>
/// </list>
/// </summary>
public sealed class IdentityFixture : IAsyncLifetime
{
    public const string AccessLogCategory = "Gateway.AccessLog";

    public TestTokens Tokens { get; } = new();

    public RawBackend Backend { get; } = new();

    public TestCertificates Certificates { get; } = new();

    public GatewayServer Lean { get; private set; } = null!;

    public GatewayServer Kestrel { get; private set; } = null!;

    public CapturingLoggerProvider Logs { get; } = new();

    public int JwksFetches => Volatile.Read(ref _jwksFetches);

    private WebApplication _idp = null!;
    private int _jwksFetches;

    public GatewayServer Gateway(bool lean) => lean ? Lean : Kestrel;

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        _idp = builder.Build();
        _idp.MapGet("/.well-known/jwks.json", () =>
        {
            Interlocked.Increment(ref _jwksFetches);
            return Results.Text(Tokens.Jwks(), "application/json");
        });
        await _idp.StartAsync();
        var idp = _idp.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First().TrimEnd('/');

        Lean = await StartAsync(lean: true, $"{idp}/.well-known/jwks.json");
        Kestrel = await StartAsync(lean: false, $"{idp}/.well-known/jwks.json");
    }

    private JsonObject Identity(Action<JsonObject>? change = null)
    {
        var identity = new JsonObject
        {
            ["TokenSources"] = HandshakeGateway.Strings("Header", "Query:access_token", "Cookie:token", "Subprotocol"),
            ["SigningKeys"] = HandshakeGateway.Strings(Tokens.RsaPublicKeyFile, Tokens.EcPublicKeyFile, Tokens.SecretFile),
            ["Issuer"] = TestTokens.Issuer,
            ["Audience"] = TestTokens.Audience,
            ["ClaimHeaders"] = new JsonObject { ["sub"] = "X-User-Id", ["role"] = "X-User-Role" },
        };
        change?.Invoke(identity);
        return identity;
    }

    private Task<GatewayServer> StartAsync(bool lean, string jwksUrl)
    {
        var routes = new JsonObject();
        foreach (var name in new[] { "id", "opt", "redact", "scoped", "peruser", "jwks", "userrate" })
        {
            routes[name] = new JsonObject
            {
                ["ClusterId"] = "raw",
                ["Match"] = new JsonObject { ["Path"] = $"/{name}/{{**rest}}" },
                ["Metadata"] = new JsonObject { ["WebSocketPolicy"] = name },
            };
        }
        var proxy = new JsonObject
        {
            ["Routes"] = routes,
            ["Clusters"] = new JsonObject
            {
                ["raw"] = new JsonObject { ["Destinations"] = new JsonObject { ["d1"] = new JsonObject { ["Address"] = Backend.Address.ToString() } } },
            },
        };
        var policies = new JsonObject
        {
            ["id"] = new JsonObject { ["Identity"] = Identity() },
            ["opt"] = new JsonObject { ["Identity"] = Identity(i => i["Required"] = false) },
            ["redact"] = new JsonObject { ["Identity"] = Identity(i => i["QueryToken"] = "Redact") },
            ["scoped"] = new JsonObject { ["Identity"] = Identity(i => i["RequiredClaims"] = new JsonObject { ["scope"] = "chat" }) },
            ["peruser"] = new JsonObject
            {
                ["Identity"] = Identity(),
                ["Limits"] = new JsonObject { ["MaxConnectionsPerUser"] = 1 },
            },
            ["userrate"] = new JsonObject
            {
                ["Identity"] = Identity(),
                // Three messages per user, refilled far slower than any test: the fourth of a user's, on any of her tunnels, is over.
                ["RateLimits"] = new JsonObject
                {
                    ["PerUser"] = new JsonObject { ["Messages"] = new JsonObject { ["PerSecond"] = 0.01, ["Burst"] = 3 } },
                    ["Action"] = "Close",
                },
            },
            ["jwks"] = new JsonObject
            {
                ["Identity"] = Identity(i =>
                {
                    i.Remove("SigningKeys");
                    i["JwksUrl"] = jwksUrl;
                }),
            },
        };
        var (certificate, key, _) = Certificates.IssueServer("server", "localhost");
        var config = HandshakeGateway.Config(proxy, policies, [new JsonObject { ["Path"] = certificate, ["KeyPath"] = key }],
            gateway: g =>
            {
                g["LeanUpgrades"] = lean;
                // Tests play clients at other addresses through X-Forwarded-For from loopback.
                g["TrustedForwarders"] = HandshakeGateway.Strings("127.0.0.1");
            });
        config["Logging"]!["LogLevel"]!["Gateway.AccessLog"] = "Information";
        config["Logging"]!["LogLevel"]!["Gateway.Handshake"] = "Information";
        // YARP's lines at Information, should one name a tunnel's URL: it must not hold the token either.
        config["Logging"]!["LogLevel"]!["Yarp"] = "Information";
        return GatewayServer.StartAsync(config, services => services.AddSingleton<ILoggerProvider>(Logs));
    }

    /// <summary>The head the backend got for the handshake to <paramref name="path"/> (request line and headers).</summary>
    public string HeadFor(string path) =>
        Assert.Single(Backend.Heads, head => head.Split("\r\n")[0].Split(' ')[1].Split('?')[0] == path);

    public async Task DisposeAsync()
    {
        await Lean.DisposeAsync();
        await Kestrel.DisposeAsync();
        await Backend.DisposeAsync();
        await _idp.DisposeAsync();
        Tokens.Dispose();
        Certificates.Dispose();
    }
}
