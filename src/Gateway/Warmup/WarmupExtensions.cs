using Gateway.Configuration;
using Gateway.Metrics;

namespace Gateway.Warmup;

internal static class WarmupExtensions
{
    /// <summary>The startup warm-up (when on): its private route, in a provider of its own, and the service that runs it.</summary>
    public static IServiceCollection AddWarmup(this IServiceCollection services, WarmupOptions options)
    {
        if (!options.Enabled)
        {
            return services;
        }
        services.AddSingleton(provider =>
        {
            var route = new WarmupRoute();
            // Its tunnels, handshakes and forwarding errors are the gateway's own: not counted, not in the access log.
            provider.GetRequiredService<GatewayMeter>().InternalTraffic.Register(route.RouteId);
            return route;
        });
        services.AddSingleton<Yarp.ReverseProxy.Configuration.IProxyConfigProvider>(provider => provider.GetRequiredService<WarmupRoute>().Provider);
        services.AddSingleton<WarmupService>();
        services.AddHostedService(provider => provider.GetRequiredService<WarmupService>());
        return services;
    }
}
