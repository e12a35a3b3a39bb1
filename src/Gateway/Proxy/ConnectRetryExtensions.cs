using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Gateway.Proxy;

internal static class ConnectRetryExtensions
{
    /// <summary>The retry's bounds; <see cref="ProxyMetrics"/> and YARP's services must be registered too.</summary>
    public static IServiceCollection AddConnectRetry(this IServiceCollection services)
    {
        services.TryAddSingleton(new ConnectRetryOptions());
        return services;
    }

    /// <summary>
    /// Retries a request on another destination when its destination cannot be connected to. Goes after the
    /// gateway's own steps (error counting, the handshake gate, the relay) and right before
    /// <c>UseSessionAffinity</c>, <c>UseLoadBalancing</c> and <c>UsePassiveHealthChecks</c>, which run again per attempt.
    /// </summary>
    public static IReverseProxyApplicationBuilder UseConnectRetry(this IReverseProxyApplicationBuilder proxy)
    {
        proxy.UseMiddleware<ConnectRetryMiddleware>();
        return proxy;
    }
}
