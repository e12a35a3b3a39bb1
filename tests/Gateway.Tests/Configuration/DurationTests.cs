using System.Text.Json.Nodes;
using Gateway.Configuration;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Yarp.ReverseProxy;

namespace Gateway.Tests.Configuration;

/// <summary>Durations as operators write them (<c>30s</c>, <c>5m</c>, <c>250ms</c>, <c>1m30s</c>) beside <c>hh:mm:ss</c>.</summary>
public sealed class DurationTests
{
    [Theory]
    [InlineData("250ms", 0.25)]
    [InlineData("30s", 30)]
    [InlineData("5m", 300)]
    [InlineData("1h", 3600)]
    [InlineData("1m30s", 90)]
    [InlineData("1.5s", 1.5)]
    [InlineData("1d", 86400)]
    [InlineData("00:00:30", 30)]
    [InlineData("1.00:00:00", 86400)]
    [InlineData("-1s", -1)]
    public void Operator_forms_parse(string text, double seconds)
    {
        Assert.True(Durations.TryParse(text, out var value));
        Assert.Equal(TimeSpan.FromSeconds(seconds), value);
    }

    [Theory]
    [InlineData("s")]
    [InlineData("30 s")]
    [InlineData("30sec")]
    [InlineData("5x")]
    [InlineData("")]
    public void Other_text_does_not(string text) => Assert.False(Durations.TryParse(text, out _));

    [Fact]
    public async Task The_file_takes_operator_durations_in_both_sections()
    {
        await using var backend = await Backend.StartAsync("a1");
        var config = GatewayServer.Config(GatewayServer.Proxy([("chat", "/chat", "a")], [("a", [backend])], (_, cluster) =>
        {
            cluster["HttpRequest"] = new JsonObject { ["ActivityTimeout"] = "2m" };
            cluster["HealthCheck"] = new JsonObject { ["Passive"] = new JsonObject { ["Enabled"] = true, ["ReactivationPeriod"] = "1m30s" } };
        }));
        config["Gateway"]!["ShutdownTimeout"] = "45s";
        config["Gateway"]!["Tls"]!["HandshakeTimeout"] = "2500ms";
        config["ReverseProxy"]!["Routes"]!["chat"]!["Timeout"] = "1h";
        await using var gateway = await GatewayServer.StartAsync(config);

        var options = gateway.Services.GetRequiredService<GatewayOptions>();
        Assert.Equal(TimeSpan.FromSeconds(45), options.ShutdownTimeout);
        Assert.Equal(TimeSpan.FromMilliseconds(2500), options.Tls.HandshakeTimeout);
        var proxy = gateway.Services.GetRequiredService<IProxyStateLookup>();
        Assert.True(proxy.TryGetCluster("a", out var cluster));
        Assert.Equal(TimeSpan.FromMinutes(2), cluster.Model.Config.HttpRequest!.ActivityTimeout);
        Assert.Equal(TimeSpan.FromSeconds(90), cluster.Model.Config.HealthCheck!.Passive!.ReactivationPeriod);
        Assert.True(proxy.TryGetRoute("chat", out var route));
        Assert.Equal(TimeSpan.FromHours(1), route.Config.Timeout);
    }
}
