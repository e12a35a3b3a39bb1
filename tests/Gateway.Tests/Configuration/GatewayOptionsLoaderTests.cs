using Gateway.Tests.Infrastructure;
using Gateway.Configuration;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Gateway.Tests.Configuration;

public sealed class GatewayOptionsLoaderTests
{
    private static GatewayOptions Load(params (string Key, string Value)[] values) => InMemoryGatewayOptions.Load(values);

    [Fact]
    public void Without_listeners_the_gateway_serves_ws_on_80_and_wss_on_443()
    {
        var options = Load();
        Assert.Equal(80, options.Listeners["ws"].Port);
        Assert.False(options.Listeners["ws"].Tls);
        Assert.Equal(443, options.Listeners["wss"].Port);
        Assert.True(options.Listeners["wss"].Tls);
        Assert.Equal("127.0.0.1", options.Admin.Address);
    }

    [Fact]
    public void Relative_paths_are_relative_to_the_configuration_file()
    {
        var options = Load(
            ("Gateway:Tls:Certificates:0:Path", "certs/server.pem"),
            ("Gateway:Tls:Certificates:0:KeyPath", "/abs/server.key"),
            ("Gateway:DataProtection:KeyDirectory", "keys"));
        Assert.Equal("/etc/gateway/certs/server.pem", options.Tls.Certificates[0].Path);
        Assert.Equal("/abs/server.key", options.Tls.Certificates[0].KeyPath);
        Assert.Equal("/etc/gateway/keys", options.DataProtection.KeyDirectory);
    }

    [Fact]
    public void Protocols_bind_from_kestrel_names()
    {
        var options = Load(("Gateway:Listeners:wss:Port", "8443"), ("Gateway:Listeners:wss:Tls", "true"), ("Gateway:Listeners:wss:Protocols", "Http1"));
        Assert.Equal(HttpProtocols.Http1, options.Listeners["wss"].Protocols);
    }

    [Theory]
    [InlineData("Gateway:Listeners:ws:Port", "70000", "Gateway:Listeners:ws:Port")]
    [InlineData("Gateway:Listeners:ws:Address", "example.com", "Gateway:Listeners:ws:Address")]
    [InlineData("Gateway:Listeners:ws:Protocols", "Http4", "Gateway:Listeners:ws:Protocols")]
    [InlineData("Gateway:Listeners:ws:Tls", "maybe", "Gateway:Listeners:ws:Tls")]
    [InlineData("Gateway:Listner", "x", "Gateway:Listner")]
    [InlineData("Gateway:Admin:Port", "-1", "Gateway:Admin:Port")]
    [InlineData("Gateway:Tls:Certificates:0:Hosts:0", "*.*.example.com", "Gateway:Tls:Certificates:0:Hosts:0")]
    [InlineData("Gateway:Tls:HandshakeTimeout", "soon", "Gateway:Tls:HandshakeTimeout")]
    [InlineData("Gateway:Tls:CertificateCheckInterval", "-00:00:01", "Gateway:Tls:CertificateCheckInterval")]
    [InlineData("Gateway:ListenBacklog", "0", "Gateway:ListenBacklog")]
    [InlineData("Gateway:Warmup:MaxDuration", "00:00:00", "Gateway:Warmup:MaxDuration")]
    [InlineData("Gateway:Warmup:Enabeld", "false", "Gateway:Warmup:Enabeld")]
    [InlineData("Gateway:Drain:Delay", "-00:00:01", "Gateway:Drain:Delay")]
    [InlineData("Gateway:Drain:Period", "-00:00:01", "Gateway:Drain:Period")]
    [InlineData("Gateway:ShutdownTimeout", "00:00:14", "Gateway:ShutdownTimeout")]
    public void A_bad_value_is_reported_with_its_key(string key, string value, string reportedKey)
    {
        var values = new List<(string, string)> { (key, value) };
        if (key.StartsWith("Gateway:Listeners:ws:", StringComparison.Ordinal) && !key.EndsWith(":Port", StringComparison.Ordinal))
        {
            values.Add(("Gateway:Listeners:ws:Port", "80"));
        }
        if (key.StartsWith("Gateway:Tls:Certificates:0:Hosts", StringComparison.Ordinal))
        {
            values.Add(("Gateway:Tls:Certificates:0:Path", "a.pem"));
        }
        var error = Assert.Throws<GatewayConfigurationException>(() => Load(values.ToArray()));
        Assert.Equal(reportedKey, error.Key);
    }

    [Fact]
    public void Two_listeners_on_one_port_are_refused()
    {
        var error = Assert.Throws<GatewayConfigurationException>(() => Load(
            ("Gateway:Listeners:a:Port", "8080"), ("Gateway:Listeners:b:Port", "8080")));
        Assert.Contains("already used by listener", error.Message);
    }
}
