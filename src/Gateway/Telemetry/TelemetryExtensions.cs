using Gateway.Handshake;
using Gateway.Metrics;
using Gateway.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;
using OpenTelemetry.Metrics;
using Yarp.ReverseProxy.Transforms.Builder;

namespace Gateway.Telemetry;

internal static class TelemetryExtensions
{
    /// <summary>
    /// OTLP export and handshake tracing (<c>Gateway:Telemetry</c>): the providers, the span source, and, while tracing
    /// is on, the transform that hands each handshake's span to the backend request.
    /// </summary>
    public static IServiceCollection AddGatewayTelemetry(this IServiceCollection services, TelemetryOptions options)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<TelemetryResource>();
        services.AddSingleton<OtlpExport>();
        // Who is speaking, for every reader of the gateway's meter provider (/metrics leaves the resource out).
        services.ConfigureOpenTelemetryMeterProvider((provider, metrics) =>
            metrics.SetResourceBuilder(provider.GetRequiredService<TelemetryResource>().Builder()));
        if (options.ExportsMetrics)
        {
            OtlpExport.AddMetricsReader(services, options.Otlp);
        }
        // The warm-up's sessions are the gateway's own, not traffic: they make no spans.
        services.AddSingleton(provider => new HandshakeTracing(provider.GetRequiredService<GatewayOptions>(), provider.GetService<GatewayMeter>()?.InternalTraffic));
        if (options.Otlp.IsEnabled)
        {
            services.AddSingleton<OtlpExportProblems>();
        }
        if (options.ExportsTraces)
        {
            services.AddSingleton<ITransformProvider, TraceContextTransforms>();
        }
        return services;
    }

    /// <summary>Starts the providers and the exporter's problem log before the first connection.</summary>
    public static WebApplication UseGatewayTelemetry(this WebApplication app)
    {
        app.Services.GetService<OtlpExportProblems>();
        app.Services.GetRequiredService<OtlpExport>();
        return app;
    }
}
