using System.Collections.Concurrent;
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
        var health = new HealthRecorder();
        await using var gateway = await GatewayServer.StartAsync(Config(crashing.Address, survivor.Address, "00:00:02"), health.Install);
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

            // Marked by its failed tunnels (each reported when its tunnel ends, just after its client hears 1014). Read from
            // what YARP was told, as it happened, not polled: the state lasts only the period, and on a loaded machine a poll
            // could land after it.
            var marked = await Retry.Eventually(() =>
            {
                var marks = health.Marks("d1").ToArray();
                Assert.True(marks.Length == 1, $"d1 marked {marks.Length} times; {health.VerdictCount("d1")} verdicts on it, of {lost} tunnels lost");
                return Task.FromResult(marks[0]);
            }, TimeSpan.FromSeconds(10));
            var sinceMark = () => Stopwatch.GetElapsedTime(marked);
            Assert.True(gateway.Services.GetRequiredService<IProxyStateLookup>().TryGetCluster("raw", out var cluster));
            // Back at once, as a restarted process is (active health checks would pass from now on).
            crashing = new RawBackend(port);

            // "Back" is the first rebuild of the cluster's available destinations after the mark that has d1 in it: the
            // reactivation's own rebuild when the period ends. YARP leaves d1 out on a thread-pool item queued at the mark;
            // on a starved pool that item could run after the reactivation, so the test does not wait for it, and probes
            // cannot time the return either (one sent before that item ran would reach d1). A verdict that undoes the mark
            // shows here as "available again 0.00 s after the mark" (FailureRatePolicy once passed verdicts on unordered).
            var back = await Retry.Eventually(() =>
            {
                var rebuilt = health.FirstWith("d1", since: marked);
                Assert.True(rebuilt is not null, $"d1 not back {sinceMark().TotalSeconds:0.0} s after the mark; ReactivationPeriod is {period.TotalSeconds} s");
                return Task.FromResult(Stopwatch.GetElapsedTime(marked, rebuilt.Value));
            }, period + TimeSpan.FromSeconds(8));
            Assert.True(back >= period - TimeSpan.FromMilliseconds(500),
                $"d1 available again {back.TotalSeconds:0.00} s after the mark, before the period; d2 marked {health.Marks("d2").Count()} times");
            Assert.Empty(health.Marks("d2"));

            // And the restarted backend gets traffic again: it has no tunnels, so least connections sends every handshake to it.
            var probing = Stopwatch.StartNew();
            while (true)
            {
                await using (await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/probe"))
                {
                }
                if (Volatile.Read(ref crashing.Handshakes) > 0)
                {
                    break;
                }
                Assert.True(probing.Elapsed < TimeSpan.FromSeconds(8), $"no handshake reached the restarted backend {sinceMark().TotalSeconds:0.0} s after the mark");
                await Task.Delay(100);
            }
            output.WriteLine($"available again {back.TotalSeconds:0.00} s after the mark (ReactivationPeriod {period.TotalSeconds} s), "
                + $"a handshake on the restarted backend {sinceMark().TotalSeconds:0.00} s after it; {lost} tunnels lost in the crash");
            Assert.NotEqual(DestinationHealth.Unhealthy, cluster.Destinations["d1"].Health.Passive);
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

    /// <summary>
    /// What YARP's health machinery was told and did, as it happened: each passive verdict (through a decorator over its
    /// <see cref="IDestinationHealthUpdater"/>) and each rebuild of a cluster's available destinations (over its
    /// <see cref="IClusterDestinationsUpdater"/>, which the reactivation goes through too), with Stopwatch timestamps.
    /// </summary>
    private sealed class HealthRecorder
    {
        private readonly ConcurrentQueue<(string Destination, DestinationHealth Health, long At)> _verdicts = new();
        private readonly ConcurrentQueue<(string[] Available, long At)> _rebuilds = new();

        public void Install(IServiceCollection services)
        {
            Decorate<IDestinationHealthUpdater>(services, yarps => new VerdictRecorder(yarps, this));
            Decorate<IClusterDestinationsUpdater>(services, yarps => new RebuildRecorder(yarps, this));
        }

        /// <summary>When <paramref name="destination"/> was marked unhealthy.</summary>
        public IEnumerable<long> Marks(string destination) =>
            _verdicts.Where(v => v.Destination == destination && v.Health == DestinationHealth.Unhealthy).Select(v => v.At);

        public int VerdictCount(string destination) => _verdicts.Count(v => v.Destination == destination);

        /// <summary>When the first rebuild at or after <paramref name="since"/> that has <paramref name="destination"/> ran.</summary>
        public long? FirstWith(string destination, long since) =>
            _rebuilds.Where(r => r.At >= since && r.Available.Contains(destination)).Select(r => (long?)r.At).FirstOrDefault();

        private static void Decorate<T>(IServiceCollection services, Func<T, T> decorate) where T : class
        {
            var yarps = services.Last(d => d.ServiceType == typeof(T));
            services.Remove(yarps);
            services.AddSingleton(provider => decorate((T)ActivatorUtilities.CreateInstance(provider, yarps.ImplementationType!)));
        }

        private sealed class VerdictRecorder(IDestinationHealthUpdater inner, HealthRecorder recorder) : IDestinationHealthUpdater
        {
            public void SetPassive(ClusterState cluster, DestinationState destination, DestinationHealth newHealth, TimeSpan reactivationPeriod)
            {
                recorder._verdicts.Enqueue((destination.DestinationId, newHealth, Stopwatch.GetTimestamp()));
                inner.SetPassive(cluster, destination, newHealth, reactivationPeriod);
            }

            public void SetActive(ClusterState cluster, IEnumerable<NewActiveDestinationHealth> newHealthStates) => inner.SetActive(cluster, newHealthStates);
        }

        private sealed class RebuildRecorder(IClusterDestinationsUpdater inner, HealthRecorder recorder) : IClusterDestinationsUpdater
        {
            public void UpdateAvailableDestinations(ClusterState cluster)
            {
                inner.UpdateAvailableDestinations(cluster);
                Record(cluster);
            }

            public void UpdateAllDestinations(ClusterState cluster)
            {
                inner.UpdateAllDestinations(cluster);
                Record(cluster);
            }

            private void Record(ClusterState cluster) =>
                recorder._rebuilds.Enqueue((cluster.DestinationsState.AvailableDestinations.Select(d => d.DestinationId).ToArray(), Stopwatch.GetTimestamp()));
        }
    }
}
