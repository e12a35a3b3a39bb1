using OpenTelemetry.Metrics;

namespace Gateway.Metrics;

internal static class MetricsExtensions
{
    /// <summary>
    /// The gateway's meter, and the one OpenTelemetry meter provider that aggregates it with the framework's meters for
    /// <c>/metrics</c> (OpenTelemetry.Exporter.Prometheus.AspNetCore); each capability adds its own instruments.
    /// </summary>
    public static IServiceCollection AddGatewayMetrics(this IServiceCollection services)
    {
        services.AddSingleton<GatewayMeter>();
        services.AddOpenTelemetry().WithMetrics(metrics => metrics.AddGatewayMeters());
        return services;
    }

    /// <summary>The Prometheus scrape endpoint, in a pipeline that only the admin listener's requests reach.</summary>
    public static IApplicationBuilder UsePrometheusScrapingEndpoint(this IApplicationBuilder admin) =>
        admin.UseOpenTelemetryPrometheusScrapingEndpoint(meterProvider: null, predicate: null, path: null,
            configureBranchedPipeline: scrape => scrape.Use((context, next) =>
            {
                context.Response.Headers.CacheControl = "no-store";
                return next(context);
            }),
            optionsName: null);
}
