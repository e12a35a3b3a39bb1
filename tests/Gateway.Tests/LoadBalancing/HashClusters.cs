using Gateway.LoadBalancing;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging.Abstractions;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Model;

namespace Gateway.Tests.LoadBalancing;

/// <summary>YARP's per-cluster state as YARP builds it, for driving <see cref="ConsistentHashPolicy"/> directly.</summary>
internal static class HashClusters
{
    public const string KeyHeader = "X-Room";

    public static ClusterState Create(IEnumerable<string> destinationIds, string hashKey = "header:" + KeyHeader, string? balanceFactor = null, string? seed = null)
    {
        var metadata = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase) { [ConsistentHashSettings.HashKeyMetadata] = hashKey };
        if (balanceFactor is not null)
        {
            metadata[ConsistentHashSettings.BalanceFactorMetadata] = balanceFactor;
        }
        if (seed is not null)
        {
            metadata[ConsistentHashSettings.SeedMetadata] = seed;
        }
        var config = new ClusterConfig { ClusterId = "rooms", LoadBalancingPolicy = ConsistentHashSettings.PolicyName, Metadata = metadata };
        var cluster = new ClusterState("rooms", new ClusterModel(config, new HttpMessageInvoker(new SocketsHttpHandler())));
        var destinations = destinationIds.Select(id => new DestinationState(id)).ToArray();
        foreach (var destination in destinations)
        {
            cluster.Destinations[destination.DestinationId] = destination;
        }
        cluster.DestinationsState = new ClusterDestinationsState(destinations, destinations);
        return cluster;
    }

    public static string[] Names(int count, int first = 1) => Enumerable.Range(first, count).Select(i => $"chat-{i}").ToArray();

    public static ConsistentHashPolicy Policy() => new(NullLogger<ConsistentHashPolicy>.Instance);

    public static string[] Keys(int count) => Enumerable.Range(0, count).Select(i => $"room-{i}").ToArray();

    /// <summary>Which destination (by name) each key goes to, with every destination idle.</summary>
    public static string[] Assign(ConsistentHashPolicy policy, ClusterState cluster, IReadOnlyList<string> keys, IReadOnlyList<DestinationState>? available = null)
    {
        var context = new DefaultHttpContext();
        var result = new string[keys.Count];
        for (var i = 0; i < keys.Count; i++)
        {
            context.Request.Headers[KeyHeader] = keys[i];
            result[i] = policy.PickDestination(context, cluster, available ?? cluster.DestinationsState.AvailableDestinations)!.DestinationId;
        }
        return result;
    }

    public static HttpContext WithKey(string key)
    {
        var context = new DefaultHttpContext();
        context.Request.Headers[KeyHeader] = key;
        return context;
    }
}

/// <summary>
/// A keyed request that stays in flight, like a tunnel, until <see cref="EndAsync"/>: counted on the destination the
/// policy picked (as YARP counts it), and ended as ASP.NET Core ends a request, by running its OnCompleted callbacks.
/// </summary>
internal sealed class Tunnel
{
    private readonly CompletingResponse _response = new();

    public Tunnel(string key)
    {
        Context = new DefaultHttpContext();
        Context.Features.Set<Microsoft.AspNetCore.Http.Features.IHttpResponseFeature>(_response);
        Context.Request.Headers[HashClusters.KeyHeader] = key;
        Key = key;
    }

    public string Key { get; }

    public HttpContext Context { get; }

    public DestinationState? Destination { get; private set; }

    public static Tunnel Open(ConsistentHashPolicy policy, ClusterState cluster, string key, IReadOnlyList<DestinationState>? available = null)
    {
        var tunnel = new Tunnel(key);
        tunnel.Destination = policy.PickDestination(tunnel.Context, cluster, available ?? cluster.DestinationsState.AvailableDestinations)!;
        tunnel.Destination.ConcurrentRequestCount++;
        return tunnel;
    }

    public async Task EndAsync()
    {
        Destination!.ConcurrentRequestCount--;
        await _response.CompleteAsync();
    }

    private sealed class CompletingResponse : Microsoft.AspNetCore.Http.Features.HttpResponseFeature
    {
        private readonly List<(Func<object, Task> Callback, object State)> _completed = [];

        public override void OnCompleted(Func<object, Task> callback, object state) => _completed.Add((callback, state));

        public async Task CompleteAsync()
        {
            foreach (var (callback, state) in _completed)
            {
                await callback(state);
            }
            _completed.Clear();
        }
    }
}
