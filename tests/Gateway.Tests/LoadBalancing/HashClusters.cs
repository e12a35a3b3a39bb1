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

    public static ClusterState Create(IEnumerable<string> destinationIds, string hashKey = "header:" + KeyHeader, string? balanceFactor = null)
    {
        var metadata = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase) { [ConsistentHashSettings.HashKeyMetadata] = hashKey };
        if (balanceFactor is not null)
        {
            metadata[ConsistentHashSettings.BalanceFactorMetadata] = balanceFactor;
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
