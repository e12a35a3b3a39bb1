namespace Gateway.Lifecycle;

internal static class LifecycleExtensions
{
    /// <summary>
    /// What happens to open tunnels when things change: the drain on shutdown (it runs before any hosted service stops,
    /// in its StoppingAsync) and the close of tunnels whose destination a reload removed.
    /// </summary>
    public static IServiceCollection AddLifecycle(this IServiceCollection services)
    {
        services.AddHostedService<GracefulShutdown>();
        services.AddSingleton<RemovedDestinationDrain>();
        services.AddSingleton<DestinationDrains>();
        return services;
    }

    /// <summary>Keeps handshakes away from destinations an operator drains; put it before session affinity.</summary>
    public static IReverseProxyApplicationBuilder UseDestinationDrains(this IReverseProxyApplicationBuilder proxy)
    {
        proxy.UseMiddleware<DestinationDrainMiddleware>();
        return proxy;
    }
}
