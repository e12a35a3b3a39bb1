using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Gateway.Telemetry;

public static class TelemetryExtensions
{
    /// <summary>
    /// OTLP export (<c>Gateway:Telemetry</c>): the providers, and the log of the exporter's problems.
    /// </summary>
    public static IServiceCollection AddGatewayTelemetry(this IServiceCollection services, TelemetryOptions options)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<TelemetryResource>();
        services.AddSingleton<OtlpExport>();
        if (options.Otlp.IsEnabled)
        {
            services.AddSingleton<OtlpExportProblems>();
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
