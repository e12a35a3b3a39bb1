namespace Gateway.Lifecycle;

public static class LifecycleExtensions
{
    /// <summary>The drain on shutdown, which runs before any hosted service stops (its StoppingAsync).</summary>
    public static IServiceCollection AddGracefulShutdown(this IServiceCollection services) =>
        services.AddHostedService<GracefulShutdown>();
}
