using Gateway.Configuration;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Listeners;

/// <summary><c>Gateway:Listeners:NAME:ProxyProtocol</c>: off unless asked for, and refused where it cannot work.</summary>
public sealed class ProxyProtocolOptionsTests
{
    [Fact]
    public void It_is_off_by_default_and_on_per_listener()
    {
        var options = InMemoryGatewayOptions.Load(
            ("Gateway:Listeners:ws:Port", "8080"),
            ("Gateway:Listeners:wss:Port", "8443"), ("Gateway:Listeners:wss:Tls", "true"), ("Gateway:Listeners:wss:ProxyProtocol", "true"));
        Assert.False(options.Listeners["ws"].ProxyProtocol);
        Assert.True(options.Listeners["wss"].ProxyProtocol);
        Assert.False(InMemoryGatewayOptions.Load().Listeners["wss"].ProxyProtocol);
    }

    [Theory]
    [InlineData("ProxyProtocol", "v2", "Gateway:Listeners:wss:ProxyProtocol")]
    [InlineData("ProxyProtcol", "true", "Gateway:Listeners:wss:ProxyProtcol")]
    public void A_bad_value_or_a_misspelt_key_names_the_key(string name, string value, string reportedKey)
    {
        var error = Assert.Throws<GatewayConfigurationException>(() => InMemoryGatewayOptions.Load(
            ("Gateway:Listeners:wss:Port", "8443"), ("Gateway:Listeners:wss:Tls", "true"), ($"Gateway:Listeners:wss:{name}", value)));
        Assert.Equal(reportedKey, error.Key);
    }

    [Fact]
    public void HTTP3_on_a_PROXY_protocol_listener_is_refused()
    {
        // QUIC connections would arrive without a header, so the client address could not be known.
        var error = Assert.Throws<GatewayConfigurationException>(() => InMemoryGatewayOptions.Load(
            ("Gateway:Listeners:wss:Port", "8443"), ("Gateway:Listeners:wss:Tls", "true"),
            ("Gateway:Listeners:wss:ProxyProtocol", "true"), ("Gateway:Listeners:wss:Protocols", "Http1AndHttp2AndHttp3")));
        Assert.Equal("Gateway:Listeners:wss:Protocols", error.Key);
        Assert.Contains("PROXY protocol", error.Message);
    }

    [Fact]
    public void Trusted_networks_default_to_none_listed_and_a_bad_one_or_one_without_ProxyProtocol_names_the_key()
    {
        var options = InMemoryGatewayOptions.Load(("Gateway:Listeners:wss:Port", "8443"), ("Gateway:Listeners:wss:ProxyProtocol", "true"),
            ("Gateway:Listeners:wss:ProxyProtocolTrustedNetworks:0", "10.0.0.0/8"), ("Gateway:Listeners:wss:ProxyProtocolTrustedNetworks:1", "2001:db8::7"));
        Assert.Equal(["10.0.0.0/8", "2001:db8::7"], options.Listeners["wss"].ProxyProtocolTrustedNetworks);
        Assert.Empty(InMemoryGatewayOptions.Load(("Gateway:Listeners:wss:Port", "8443"), ("Gateway:Listeners:wss:ProxyProtocol", "true"))
            .Listeners["wss"].ProxyProtocolTrustedNetworks);

        var bad = Assert.Throws<GatewayConfigurationException>(() => InMemoryGatewayOptions.Load(("Gateway:Listeners:wss:Port", "8443"),
            ("Gateway:Listeners:wss:ProxyProtocol", "true"), ("Gateway:Listeners:wss:ProxyProtocolTrustedNetworks:0", "10.0.0.0/33")));
        Assert.Equal("Gateway:Listeners:wss:ProxyProtocolTrustedNetworks:0", bad.Key);
        var alone = Assert.Throws<GatewayConfigurationException>(() => InMemoryGatewayOptions.Load(("Gateway:Listeners:wss:Port", "8443"),
            ("Gateway:Listeners:wss:ProxyProtocolTrustedNetworks:0", "10.0.0.0/8")));
        Assert.Equal("Gateway:Listeners:wss:ProxyProtocolTrustedNetworks", alone.Key);
    }
}
