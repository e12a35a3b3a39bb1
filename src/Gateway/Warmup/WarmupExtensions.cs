using Gateway.Configuration;

namespace Gateway.Warmup;

public static class WarmupExtensions
{
    /// <summary>The startup warm-up (when on): its private route, in a provider of its own, and the service that runs it.</summary>
    public static IServiceCollection AddWarmup(this IServiceCollection services, WarmupOptions options)
    {
        if (!options.Enabled)
        {
            return services;
        }
        services.AddSingleton<WarmupRoute>();
        services.AddSingleton<Yarp.ReverseProxy.Configuration.IProxyConfigProvider>(provider => provider.GetRequiredService<WarmupRoute>().Provider);
        services.AddSingleton<WarmupService>();
        services.AddHostedService(provider => provider.GetRequiredService<WarmupService>());
        return services;
    }
}
