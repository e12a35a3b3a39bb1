using System.Text.Json.Nodes;
using Gateway.Tests.Infrastructure;
using Gateway.Warmup;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Tests.Listeners;

/// <summary>The startup warm-up reaches listeners that expect a PROXY header the way a balancer's health check does.</summary>
[Collection(SerialCollection.Name)]
public sealed class ProxyProtocolWarmupTests
{
    [Fact]
    public async Task The_warm_up_opens_its_connections_with_a_LOCAL_header_and_none_is_rejected()
    {
        await using var backend = await Backend.StartAsync("b1");
        var config = GatewayServer.Config(GatewayServer.Proxy([("chat", "/chat", "chat")], [("chat", [backend])]));
        var gateway = (JsonObject)config["Gateway"]!;
        gateway["Listeners"]!["ws"]!["ProxyProtocol"] = true;
        gateway["Listeners"]!["wss"]!["ProxyProtocol"] = true;
        gateway["Warmup"] = new JsonObject { ["Enabled"] = true, ["MaxDuration"] = "00:00:02" };
        await using var server = await GatewayServer.StartAsync(config);

        var warmup = server.Services.GetRequiredService<WarmupService>();
        await warmup.Completion.WaitAsync(TimeSpan.FromSeconds(15));
        var report = warmup.Report!;
        Assert.Equal(["ws (HTTP/1.1)", "wss (HTTP/1.1)", "wss (HTTP/2)"], report.Targets);
        Assert.Equal(0, report.Failures);
        Assert.Empty(report.GaveUp);
        Assert.True(report.Sessions > 0, $"{report.Sessions} sessions");
        var scrape = await MetricsScrape.FetchAsync(server);
        Assert.Equal(0, scrape.Value("gateway_proxy_protocol_rejected_total"));
    }
}
