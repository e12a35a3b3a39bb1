namespace Gateway.Metrics;

public static class MetricsExtensions
{
    /// <summary>The gateway's meter and the exporter behind <c>/metrics</c>; each capability adds its own instruments.</summary>
    public static IServiceCollection AddGatewayMetrics(this IServiceCollection services)
    {
        services.AddSingleton<GatewayMeter>();
        services.AddSingleton<MetricsSetup>();
        return services;
    }
}
