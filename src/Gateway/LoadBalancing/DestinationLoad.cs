using System.Runtime.CompilerServices;
using Yarp.ReverseProxy.Model;

namespace Gateway.LoadBalancing;

/// <summary>
/// How loaded a destination is: the WebSocket tunnels open on it (counted here, atomically, by the tunnel forwarder for
/// each tunnel's whole life) plus the plain HTTP requests YARP's forwarder has in flight on it. It is the one number the
/// gateway's least-tunnels balancing, the <c>ConsistentHash</c> bound and fallback, destination drains and the admin
/// API read.
/// </summary>
/// <remarks>
/// A count of the gateway's own because YARP's <see cref="DestinationState.ConcurrentRequestCount"/> is YARP's forwarder's:
/// it is only atomic from inside YARP, and the tunnels no longer pass YARP's forwarder. Kept beside each destination
/// in a <see cref="ConditionalWeakTable{TKey,TValue}"/>, so a destination a reload removed takes its count with it.
/// </remarks>
internal static class DestinationLoad
{
    private static readonly ConditionalWeakTable<DestinationState, Counter> Counts = new();

    /// <summary>Open tunnels plus YARP's plain requests in flight on <paramref name="destination"/>.</summary>
    public static int Of(DestinationState destination) =>
        Tunnels(destination) + Math.Max(0, destination.ConcurrentRequestCount);

    /// <summary>The WebSocket tunnels open on <paramref name="destination"/> (a handshake counts from its choice on).</summary>
    public static int Tunnels(DestinationState destination) =>
        Counts.TryGetValue(destination, out var counter) ? Math.Max(0, Volatile.Read(ref counter.Value)) : 0;

    /// <summary>A tunnel chose <paramref name="destination"/>: counted until <see cref="TunnelClosed"/>.</summary>
    public static void TunnelOpened(DestinationState destination) =>
        Interlocked.Increment(ref Counts.GetValue(destination, static _ => new Counter()).Value);

    /// <summary>The tunnel (or its handshake) on <paramref name="destination"/> is over.</summary>
    public static void TunnelClosed(DestinationState destination)
    {
        if (Counts.TryGetValue(destination, out var counter))
        {
            Interlocked.Decrement(ref counter.Value);
        }
    }

    private sealed class Counter
    {
        public int Value;
    }
}
