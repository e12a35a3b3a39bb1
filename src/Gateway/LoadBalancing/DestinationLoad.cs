using Yarp.ReverseProxy.Model;

namespace Gateway.LoadBalancing;

/// <summary>
/// The one place the <c>ConsistentHash</c> policy reads how loaded a destination is (its bound and its keyless
/// fallback both go through here), so changing where that count comes from is a change of one line.
/// </summary>
internal static class DestinationLoad
{
    /// <summary>YARP's requests in flight on the destination; a proxied WebSocket is one for its whole life.</summary>
    public static int Of(DestinationState destination) => Math.Max(0, destination.ConcurrentRequestCount);
}
