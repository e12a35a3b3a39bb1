using Gateway.Tests.Infrastructure;
using Gateway.Configuration;
using Gateway.Policies;
using Microsoft.Extensions.Configuration;

namespace Gateway.Tests.Policies;

/// <summary>The handshake and limit keys: defaults, what parses, and bad values reported with their key at load.</summary>
public sealed class PolicyConfigurationTests
{
    private static GatewayOptions Load(params (string Key, string Value)[] values) => InMemoryGatewayOptions.Load(values);

    [Fact]
    public void The_built_in_policy_keeps_plain_http_and_non_browser_clients_working_and_allows_same_origin_pages_only()
    {
        var policy = new WebSocketPolicies(Load()).Default.Options;
        Assert.Empty(policy.Handshake.AllowedOrigins);
        Assert.True(policy.Handshake.AllowMissingOrigin);
        Assert.True(policy.Handshake.AllowPlainHttp);
        Assert.Empty(policy.Handshake.Subprotocols);
        Assert.False(policy.Handshake.RequireSubprotocol);
        Assert.Equal(0, policy.Limits.MaxConnections);
        Assert.Equal(0, policy.Limits.MaxConnectionsPerClient);
        Assert.Equal(0, policy.Limits.HandshakesPerMinutePerClient);
        Assert.Equal(64, policy.Limits.IPv6PrefixLength);
        Assert.Empty(Load().TrustedForwarders);
    }

    [Fact]
    public void A_full_policy_binds()
    {
        var options = Load(
            ("Gateway:WebSocketPolicies:chat:Handshake:AllowedOrigins:0", "https://chat.example.com"),
            ("Gateway:WebSocketPolicies:chat:Handshake:AllowedOrigins:1", "https://*.example.com:8443"),
            ("Gateway:WebSocketPolicies:chat:Handshake:AllowedOrigins:2", "http://[::1]:8080"),
            ("Gateway:WebSocketPolicies:chat:Handshake:AllowedOrigins:3", "null"),
            ("Gateway:WebSocketPolicies:chat:Handshake:AllowedOrigins:4", "*"),
            ("Gateway:WebSocketPolicies:chat:Handshake:AllowMissingOrigin", "false"),
            ("Gateway:WebSocketPolicies:chat:Handshake:AllowPlainHttp", "false"),
            ("Gateway:WebSocketPolicies:chat:Handshake:Subprotocols:0", "chat.v2"),
            ("Gateway:WebSocketPolicies:chat:Handshake:RequireSubprotocol", "true"),
            ("Gateway:WebSocketPolicies:chat:Limits:MaxConnections", "50000"),
            ("Gateway:WebSocketPolicies:chat:Limits:MaxConnectionsPerClient", "20"),
            ("Gateway:WebSocketPolicies:chat:Limits:HandshakesPerMinutePerClient", "60"),
            ("Gateway:WebSocketPolicies:chat:Limits:IPv6PrefixLength", "56"),
            ("Gateway:TrustedForwarders:0", "10.0.0.0/8"),
            ("Gateway:TrustedForwarders:1", "192.0.2.7"),
            ("Gateway:TrustedForwarders:2", "2001:db8::/32"),
            ("Kestrel:Limits:MaxRequestLineSize", "4096"),
            ("Kestrel:Limits:RequestHeadersTimeout", "00:00:05"),
            ("Kestrel:Limits:Http2:MaxStreamsPerConnection", "50"));
        var chat = options.WebSocketPolicies["chat"];
        Assert.Equal(5, chat.Handshake.AllowedOrigins.Count);
        Assert.False(chat.Handshake.AllowPlainHttp);
        Assert.Equal(["chat.v2"], chat.Handshake.Subprotocols);
        Assert.Equal(20, chat.Limits.MaxConnectionsPerClient);
        Assert.Equal(56, chat.Limits.IPv6PrefixLength);
        Assert.Equal(3, options.TrustedForwarders.Count);
    }

    [Theory]
    [InlineData("gateway.json")]
    [InlineData("demo.json")]
    public void The_shipped_configurations_load_with_their_policies(string file)
    {
        var directory = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(directory, "Gateway.sln")))
        {
            directory = Path.GetDirectoryName(directory) ?? throw new InvalidOperationException("repository root not found");
        }
        var path = Path.Combine(directory, "config", file);
        var configuration = new ConfigurationBuilder().AddJsonFile(path).Build();
        var options = GatewayConfiguration.Load(configuration, Path.GetDirectoryName(path)!);
        var chat = options.WebSocketPolicies["chat"];
        Assert.False(chat.Handshake.AllowPlainHttp);
        Assert.Equal(["chat.v2", "chat.v1"], chat.Handshake.Subprotocols);
        Assert.Equal("chat", configuration["ReverseProxy:Routes:chat:Metadata:WebSocketPolicy"]);
    }

    [Theory]
    [InlineData("Gateway:WebSocketPolicies:chat:Handshake:AllowedOrigins:0", "chat.example.com", "Gateway:WebSocketPolicies:chat:Handshake:AllowedOrigins:0")]
    [InlineData("Gateway:WebSocketPolicies:chat:Handshake:AllowedOrigins:0", "https://chat.example.com/", "Gateway:WebSocketPolicies:chat:Handshake:AllowedOrigins:0")]
    [InlineData("Gateway:WebSocketPolicies:chat:Handshake:AllowedOrigins:0", "https://chat.example.com:0", "Gateway:WebSocketPolicies:chat:Handshake:AllowedOrigins:0")]
    [InlineData("Gateway:WebSocketPolicies:chat:Handshake:AllowedOrigins:0", "https://*example.com", "Gateway:WebSocketPolicies:chat:Handshake:AllowedOrigins:0")]
    [InlineData("Gateway:WebSocketPolicies:chat:Handshake:AllowedOrigins:0", "https://a.*.example.com", "Gateway:WebSocketPolicies:chat:Handshake:AllowedOrigins:0")]
    [InlineData("Gateway:WebSocketPolicies:chat:Handshake:AllowedOrigins:0", "https://*.", "Gateway:WebSocketPolicies:chat:Handshake:AllowedOrigins:0")]
    [InlineData("Gateway:WebSocketPolicies:chat:Handshake:AllowedOrigin:0", "https://chat.example.com", "Gateway:WebSocketPolicies:chat:Handshake:AllowedOrigin")]
    [InlineData("Gateway:WebSocketPolicies:chat:Handshake:AllowPlainHttp", "sometimes", "Gateway:WebSocketPolicies:chat:Handshake:AllowPlainHttp")]
    [InlineData("Gateway:WebSocketPolicies:chat:Handshake:Subprotocols:0", "chat v1", "Gateway:WebSocketPolicies:chat:Handshake:Subprotocols:0")]
    [InlineData("Gateway:WebSocketPolicies:chat:Handshake:Subprotocols:0", "chat,v1", "Gateway:WebSocketPolicies:chat:Handshake:Subprotocols:0")]
    [InlineData("Gateway:WebSocketPolicies:chat:Limits:MaxConnections", "-1", "Gateway:WebSocketPolicies:chat:Limits:MaxConnections")]
    [InlineData("Gateway:WebSocketPolicies:chat:Limits:MaxConnectionsPerClient", "-5", "Gateway:WebSocketPolicies:chat:Limits:MaxConnectionsPerClient")]
    [InlineData("Gateway:WebSocketPolicies:chat:Limits:HandshakesPerMinutePerClient", "lots", "Gateway:WebSocketPolicies:chat:Limits:HandshakesPerMinutePerClient")]
    [InlineData("Gateway:WebSocketPolicies:chat:Limits:HandshakesPerSecond", "5", "Gateway:WebSocketPolicies:chat:Limits:HandshakesPerSecond")]
    [InlineData("Gateway:WebSocketPolicies:chat:Limits:IPv6PrefixLength", "0", "Gateway:WebSocketPolicies:chat:Limits:IPv6PrefixLength")]
    [InlineData("Gateway:WebSocketPolicies:chat:Limits:IPv6PrefixLength", "129", "Gateway:WebSocketPolicies:chat:Limits:IPv6PrefixLength")]
    [InlineData("Gateway:WebSocketPolicies:chat:Limits:IPv6PrefixLength", "/64", "Gateway:WebSocketPolicies:chat:Limits:IPv6PrefixLength")]
    [InlineData("Gateway:WebSocketPolicies:chat:Limits:MaxLifetime", "-01:00:00", "Gateway:WebSocketPolicies:chat:Limits:MaxLifetime")]
    [InlineData("Gateway:TrustedForwarders:0", "10.0.0.0/33", "Gateway:TrustedForwarders:0")]
    [InlineData("Gateway:TrustedForwarders:0", "loadbalancer.internal", "Gateway:TrustedForwarders:0")]
    [InlineData("Kestrel:Limits:MaxRequestLineSiz", "4096", "Kestrel:Limits:MaxRequestLineSiz")]
    [InlineData("Kestrel:Limits:MaxRequestLineSize", "-1", "Kestrel:Limits:MaxRequestLineSize")]
    [InlineData("Kestrel:Limits:RequestHeadersTimeout", "soon", "Kestrel:Limits:RequestHeadersTimeout")]
    [InlineData("Kestrel:Limits:Http2:MaxStreamsPerConnection", "0", "Kestrel:Limits:Http2")]
    public void A_bad_value_is_reported_with_its_key(string key, string value, string reportedKey)
    {
        var error = Assert.Throws<GatewayConfigurationException>(() => Load((key, value)));
        Assert.Equal(reportedKey, error.Key);
    }

    [Fact]
    public void An_IPv6_prefix_length_out_of_range_says_what_is_allowed()
    {
        var error = Assert.Throws<GatewayConfigurationException>(() => Load(("Gateway:WebSocketPolicies:chat:Limits:IPv6PrefixLength", "129")));
        Assert.Contains("between 1 and 128", error.Message);
        Assert.Contains("Gateway:WebSocketPolicies:chat:Limits:IPv6PrefixLength", error.Message);
    }
}
