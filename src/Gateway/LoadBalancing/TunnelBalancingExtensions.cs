using Yarp.ReverseProxy.LoadBalancing;

namespace Gateway.LoadBalancing;

internal static class TunnelBalancingExtensions
{
    /// <summary>YARP's implementations this replaces, by full name (they are internal to YARP).</summary>
    private static readonly string[] Replaced =
    [
        "Yarp.ReverseProxy.LoadBalancing.LeastRequestsLoadBalancingPolicy",
        "Yarp.ReverseProxy.LoadBalancing.PowerOfTwoChoicesLoadBalancingPolicy",
    ];

    /// <summary>
    /// Puts <see cref="LeastRequestsPolicy"/> and <see cref="PowerOfTwoChoicesPolicy"/> in the place of YARP's
    /// <c>LeastRequests</c> and <c>PowerOfTwoChoices</c>, under the same names, so that clusters configured for YARP's
    /// (and clusters that name no policy) count open WebSocket tunnels too. Call after <c>AddReverseProxy</c>; fails at
    /// startup if YARP's are not found, since YARP refuses two policies of one name and an upgrade could rename them.
    /// </summary>
    public static IServiceCollection AddTunnelAwareBalancing(this IServiceCollection services)
    {
        foreach (var name in Replaced)
        {
            var yarps = services.Where(d => d.ServiceType == typeof(ILoadBalancingPolicy) && d.ImplementationType?.FullName == name).ToArray();
            if (yarps.Length != 1)
            {
                throw new InvalidOperationException(
                    $"AddTunnelAwareBalancing must follow AddReverseProxy, which registers YARP's {name} once (found {yarps.Length})");
            }
            services.Remove(yarps[0]);
        }
        services.AddSingleton<ILoadBalancingPolicy, LeastRequestsPolicy>();
        services.AddSingleton<ILoadBalancingPolicy, PowerOfTwoChoicesPolicy>();
        return services;
    }
}
