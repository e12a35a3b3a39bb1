using Yarp.ReverseProxy.Health;

namespace Gateway.Health;

internal static class PassiveHealthExtensions
{
    /// <summary>
    /// Puts <see cref="FailureRatePolicy"/> in the place of YARP's <c>TransportFailureRate</c> policy, under the same
    /// name, so clusters configured for YARP's get it. Call after <c>AddReverseProxy</c>; fails at startup if YARP's is
    /// not found, so a YARP upgrade that moves it cannot leave two policies of one name.
    /// </summary>
    public static IServiceCollection AddGatewayPassiveHealth(this IServiceCollection services)
    {
        var yarps = services.Where(d => d.ServiceType == typeof(IPassiveHealthCheckPolicy)
            && d.ImplementationType?.FullName == "Yarp.ReverseProxy.Health.TransportFailureRateHealthPolicy").ToArray();
        if (yarps.Length != 1)
        {
            throw new InvalidOperationException("AddGatewayPassiveHealth must follow AddReverseProxy, which registers YARP's TransportFailureRate policy");
        }
        services.Remove(yarps[0]);
        services.AddSingleton<IPassiveHealthCheckPolicy, FailureRatePolicy>();
        return services;
    }
}
