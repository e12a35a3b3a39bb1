using System.Diagnostics;
using System.Text.Json.Nodes;
using Gateway.Tests.Infrastructure;
using Gateway.Tests.Relay;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace Gateway.Tests.Proxy;

/// <summary>
/// Passive health after a crash (issue 22): the tunnels that die with a backend mark it unhealthy, and once restarted it
/// must be back after the cluster's <c>ReactivationPeriod</c>, not after YARP's 60 s detection window.
/// </summary>
public sealed class PassiveHealthTests(ITestOutputHelper output)
{
    private const int Tunnels = 24; // about 12 on each backend: more than the 10 requests passive health needs to judge one

    /// <summary>Two destinations: with all of a cluster's destinations unhealthy YARP's default policy uses them all anyway.</summary>
    private static JsonObject Config(Uri crashing, Uri survivor, string reactivationPeriod)
    {
        var config = RelayConfig.Build(crashing, RelayConfig.KeepAlive("00:00:30", "00:00:15"));
        var cluster = config["ReverseProxy"]!["Clusters"]!["raw"]!;
        cluster["Destinations"]!["d2"] = new JsonObject { ["Address"] = survivor.ToString() };
        cluster["HealthCheck"] = new JsonObject
        {
            ["Passive"] = new JsonObject { ["Enabled"] = true, ["Policy"] = "TransportFailureRate", ["ReactivationPeriod"] = reactivationPeriod },
        };
        return config;
    }

    [Fact]
    public async Task A_crashed_and_restarted_backend_is_back_after_the_reactivation_period()
    {
        var period = TimeSpan.FromSeconds(2);
        var crashing = new RawBackend();
        var port = crashing.Address.Port;
        await using var survivor = new RawBackend();
        await using var gateway = await GatewayServer.StartAsync(Config(crashing.Address, survivor.Address, "00:00:02"));
        var clients = new List<RawWebSocketClient>();
        try
        {
            for (var i = 0; i < Tunnels; i++)
            {
                clients.Add(await RawWebSocketClient.ConnectAsync(gateway.Ws, $"/raw/member{i}"));
            }
            await Retry.Eventually(() => Assert.Equal(Tunnels, crashing.Connections + survivor.Connections), TimeSpan.FromSeconds(10));
            var lost = crashing.Connections;
            Assert.InRange(lost, 10, Tunnels - 1);

            // The crash: the kernel resets every connection and the port stops listening.
            for (var i = 0; i < lost; i++)
            {
                crashing.Reset(i);
            }
            await crashing.DisposeAsync();

            // Marked by its failed tunnels (each reported when its request ends, just after its client's Close).
            Assert.True(gateway.Services.GetRequiredService<IProxyStateLookup>().TryGetCluster("raw", out var cluster));
            var destination = cluster.Destinations["d1"];
            await Retry.Eventually(() =>
            {
                Assert.Equal(DestinationHealth.Unhealthy, destination.Health.Passive);
                // YARP updates the list just after. (A DestinationState is a list of itself: compared by reference here.)
                Assert.Equal(0, cluster.DestinationsState.AvailableDestinations.Count(d => ReferenceEquals(d, destination)));
            }, TimeSpan.FromSeconds(5));
            var clock = Stopwatch.StartNew();
            // Back at once, as a restarted process is (active health checks would pass from now on).
            crashing = new RawBackend(port);

            // The restarted backend has no tunnels, so least connections sends every handshake to it once it is back.
            while (true)
            {
                await using (await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/probe"))
                {
                }
                if (Volatile.Read(ref crashing.Handshakes) > 0)
                {
                    break;
                }
                Assert.True(clock.Elapsed < period + TimeSpan.FromSeconds(8), $"still out after {clock.Elapsed.TotalSeconds:0.0} s; ReactivationPeriod is {period.TotalSeconds} s");
                await Task.Delay(100);
            }
            output.WriteLine($"back after {clock.Elapsed.TotalSeconds:0.00} s (ReactivationPeriod {period.TotalSeconds} s); {lost} tunnels lost in the crash");
            Assert.True(clock.Elapsed >= period - TimeSpan.FromMilliseconds(500), $"back after {clock.Elapsed.TotalSeconds:0.00} s, before the period");
        }
        finally
        {
            foreach (var client in clients)
            {
                await client.DisposeAsync();
            }
            await crashing.DisposeAsync();
        }
    }

    [Fact]
    public async Task The_gateway_policy_takes_the_place_of_YARPs_under_its_name()
    {
        await using var backend = new RawBackend();
        await using var gateway = await GatewayServer.StartAsync(Config(backend.Address, backend.Address, "00:00:02"));

        var policy = Assert.Single(gateway.Services.GetServices<IPassiveHealthCheckPolicy>());
        Assert.Equal("TransportFailureRate", policy.Name);
        Assert.Equal("Gateway.Health.FailureRatePolicy", policy.GetType().FullName);
    }
}
