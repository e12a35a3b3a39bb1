using Gateway.LoadBalancing;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Model;

namespace Gateway.Tests.LoadBalancing;

/// <summary>Destinations as YARP builds them, loaded with tunnels (the gateway's count) and plain requests (YARP's).</summary>
internal static class LoadedDestinations
{
    public static DestinationState[] Create(int count) =>
        Enumerable.Range(1, count).Select(i => new DestinationState($"chat-{i}")).ToArray();

    /// <summary>The cluster the destinations belong to; the balancing policies here do not read it.</summary>
    public static ClusterState Cluster(IReadOnlyList<DestinationState> destinations, string policy)
    {
        var config = new ClusterConfig { ClusterId = "chat", LoadBalancingPolicy = policy };
        var cluster = new ClusterState("chat", new ClusterModel(config, new HttpMessageInvoker(new SocketsHttpHandler())));
        foreach (var destination in destinations)
        {
            cluster.Destinations[destination.DestinationId] = destination;
        }
        cluster.DestinationsState = new ClusterDestinationsState(destinations.ToArray(), destinations.ToArray());
        return cluster;
    }

    /// <summary>Opens <paramref name="count"/> tunnels on <paramref name="destination"/>, as the tunnel forwarder does.</summary>
    public static DestinationState WithTunnels(this DestinationState destination, int count)
    {
        for (var i = 0; i < count; i++)
        {
            DestinationLoad.TunnelOpened(destination);
        }
        return destination;
    }

    /// <summary>Plain HTTP requests in flight on <paramref name="destination"/>, as YARP's forwarder counts them.</summary>
    public static DestinationState WithRequests(this DestinationState destination, int count)
    {
        destination.ConcurrentRequestCount += count;
        return destination;
    }
}
