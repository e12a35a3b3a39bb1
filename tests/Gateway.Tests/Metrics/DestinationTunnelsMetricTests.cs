using System.Net.WebSockets;
using Gateway.LoadBalancing;
using Gateway.Tests.Infrastructure;
using Gateway.Tests.Relay;
using Microsoft.Extensions.DependencyInjection;
using Yarp.ReverseProxy;

namespace Gateway.Tests.Metrics;

/// <summary>
/// <c>gateway_destination_tunnels</c> is the destination's count that load balancing reads, exported as it is at the
/// scrape: it follows the tunnels up and back down to 0. Serial because it reads /metrics (see <see cref="SerialCollection"/>).
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class DestinationTunnelsMetricTests
{
    [Fact]
    public async Task The_scrape_shows_the_tunnels_open_on_each_destination_as_the_balancer_counts_them()
    {
        await using var backend = new RawBackend();
        await using var gateway = await GatewayServer.StartAsync(RelayConfig.Build(backend.Address, RelayConfig.KeepAlive("00:00:30", "00:00:15")));
        Assert.True(gateway.Services.GetRequiredService<IProxyStateLookup>().TryGetCluster("raw", out var cluster));
        var destination = cluster.Destinations["d1"];

        var idle = await MetricsScrape.FetchAsync(gateway);
        Assert.Contains("\ngateway_destination_tunnels{cluster=\"raw\",destination=\"d1\"} 0", idle.Text);

        var clients = new List<ClientWebSocket>();
        try
        {
            for (var i = 0; i < 2; i++)
            {
                clients.Add(await WebSocketClient.ConnectAsync(gateway, Transport.Ws, $"/raw/{i}"));
            }
            var open = await MetricsScrape.FetchAsync(gateway);
            ExpositionFormat.AssertValid(open.Text);
            Assert.Contains("# TYPE gateway_destination_tunnels gauge", open.Text);
            Assert.Contains("\ngateway_destination_tunnels{cluster=\"raw\",destination=\"d1\"} 2", open.Text);
            Assert.Equal(2, open.Value("gateway_destination_tunnels", ("cluster", "raw"), ("destination", "d1")));
            Assert.Equal(DestinationLoad.Tunnels(destination), (int)open.Value("gateway_destination_tunnels", ("destination", "d1")));

            foreach (var client in clients)
            {
                Assert.Equal(WebSocketCloseStatus.NormalClosure, await WebSocketClient.CloseAsync(client));
            }
            await Retry.Eventually(async () =>
            {
                var closed = await MetricsScrape.FetchAsync(gateway);
                Assert.Contains("\ngateway_destination_tunnels{cluster=\"raw\",destination=\"d1\"} 0", closed.Text);
            }, TimeSpan.FromSeconds(10));
            Assert.Equal(0, DestinationLoad.Tunnels(destination));
        }
        finally
        {
            foreach (var client in clients)
            {
                client.Abort();
                client.Dispose();
            }
        }
    }
}
