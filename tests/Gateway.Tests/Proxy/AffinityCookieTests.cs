using System.Text.Json.Nodes;
using Gateway.Proxy;
using Gateway.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Yarp.ReverseProxy.Configuration;

namespace Gateway.Tests.Proxy;

/// <summary>
/// The affinity cookie's attributes: Secure when the handshake came over TLS, HttpOnly always, unless the cluster's
/// own <c>SessionAffinity:Cookie</c> says otherwise.
/// </summary>
public sealed class AffinityCookieTests : IAsyncLifetime
{
    private readonly TestCertificates _certificates = new();
    private Backend _backend = null!;
    private GatewayServer _gateway = null!;

    public async Task InitializeAsync()
    {
        _backend = await Backend.StartAsync("b1");
        var (certificate, key, _) = _certificates.IssueServer("server", "localhost");
        var proxy = GatewayServer.Proxy(
            [("chat", "/chat", "chat"), ("plain", "/plain", "plain"), ("strict", "/strict", "strict")],
            [("chat", [_backend]), ("plain", [_backend]), ("strict", [_backend])],
            (cluster, config) =>
            {
                // The backend's chat lives at /chat/{room}; these two clusters reach it under other route prefixes.
                if (cluster != "chat")
                {
                    config["SessionAffinity"] = new JsonObject
                    {
                        ["Cookie"] = cluster == "plain"
                            ? new JsonObject { ["SecurePolicy"] = "None", ["HttpOnly"] = false }
                            : new JsonObject { ["SecurePolicy"] = "Always", ["SameSite"] = "Strict", ["Path"] = "/strict" },
                    };
                }
            });
        foreach (var route in new[] { "plain", "strict" })
        {
            var prefix = $"/{route}";
            ((JsonObject)proxy["Routes"]![route]!)["Transforms"] = new JsonArray(new JsonObject { ["PathRemovePrefix"] = prefix });
        }
        _gateway = await GatewayServer.StartAsync(GatewayServer.Config(proxy, [new JsonObject { ["Path"] = certificate, ["KeyPath"] = key }]));
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _backend.DisposeAsync();
        _certificates.Dispose();
    }

    [Theory]
    [InlineData(Transport.Ws, false)]
    [InlineData(Transport.WssHttp11, true)]
    [InlineData(Transport.WssHttp2, true)]
    public async Task The_cookie_is_HttpOnly_and_Secure_when_the_handshake_came_over_TLS(Transport transport, bool secure)
    {
        var attributes = await AffinityCookieAsync(transport, "/chat/lobby");
        Assert.Contains("httponly", attributes);
        Assert.Equal(secure, attributes.Contains("secure"));
        Assert.DoesNotContain(attributes, a => a.StartsWith("samesite", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(Transport.WssHttp11)]
    [InlineData(Transport.WssHttp2)]
    public async Task A_cluster_that_turns_the_attributes_off_keeps_them_off(Transport transport)
    {
        var attributes = await AffinityCookieAsync(transport, "/plain/chat/lobby");
        Assert.DoesNotContain("secure", attributes);
        Assert.DoesNotContain("httponly", attributes);
    }

    [Fact]
    public async Task A_cluster_that_sets_some_attributes_gets_the_defaults_for_the_others()
    {
        var attributes = await AffinityCookieAsync(Transport.Ws, "/strict/chat/lobby");
        Assert.Contains("secure", attributes);
        Assert.Contains("samesite=strict", attributes);
        Assert.Contains("path=/strict", attributes);
        Assert.Contains("httponly", attributes);
    }

    [Fact]
    public void The_defaults_fill_in_only_what_a_cluster_left_unset()
    {
        var none = ProxyConfigDefaults.WithCookieDefaults(null);
        Assert.Equal(CookieSecurePolicy.SameAsRequest, none.SecurePolicy);
        Assert.True(none.HttpOnly);
        Assert.Null(none.SameSite);

        var set = new SessionAffinityCookieConfig
        {
            SecurePolicy = CookieSecurePolicy.Always,
            HttpOnly = false,
            Domain = "example.com",
            MaxAge = TimeSpan.FromHours(1),
        };
        Assert.Equal(set, ProxyConfigDefaults.WithCookieDefaults(set));
    }

    /// <summary>The lowercased attributes of the affinity cookie the gateway set on the handshake's answer.</summary>
    private async Task<string[]> AffinityCookieAsync(Transport transport, string path)
    {
        using var socket = await WebSocketClient.ConnectAsync(_gateway, transport, path, _certificates);
        try
        {
            var cookie = socket.HttpResponseHeaders?.GetValueOrDefault("Set-Cookie")?
                .SingleOrDefault(c => c.StartsWith(ProxyConfigDefaults.DefaultAffinityKeyName + "=", StringComparison.Ordinal));
            Assert.NotNull(cookie);
            Assert.Equal("b1", await WebSocketClient.ReceiveWelcomeBackendAsync(socket));
            return cookie.Split(';').Skip(1).Select(a => a.Trim().ToLowerInvariant()).ToArray();
        }
        finally
        {
            await WebSocketClient.CloseAsync(socket);
        }
    }
}
