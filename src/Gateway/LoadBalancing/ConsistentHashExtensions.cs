using Yarp.ReverseProxy.LoadBalancing;

namespace Gateway.LoadBalancing;

internal static class ConsistentHashExtensions
{
    /// <summary>
    /// The <c>ConsistentHash</c> load-balancing policy, beside YARP's own (YARP finds a cluster's policy by name).
    /// Its cluster metadata is checked by <c>ProxyConfigDefaults</c>, which also turns session affinity off by default
    /// for such clusters.
    /// </summary>
    public static IServiceCollection AddConsistentHash(this IServiceCollection services)
    {
        services.AddSingleton<ILoadBalancingPolicy, ConsistentHashPolicy>();
        return services;
    }
}
