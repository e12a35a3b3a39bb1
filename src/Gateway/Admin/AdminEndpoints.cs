using Gateway.Lifecycle;
using Gateway.Metrics;

namespace Gateway.Admin;

/// <summary>
/// The operator's endpoints. They answer only on the admin listener, a server of its own (<see cref="AdminServer"/>):
/// the public listeners never reach them, and the admin listener never reaches the proxy.
/// </summary>
internal static class AdminEndpoints
{
    /// <summary>Readiness, which the listeners, the warm-up and shutdown report to, and the admin API's token (if any).</summary>
    public static IServiceCollection AddAdmin(this IServiceCollection services, string? token)
    {
        services.AddSingleton<Readiness>();
        services.AddSingleton(new AdminToken(token));
        services.AddHostedService<AdminServer>();
        return services;
    }

    /// <summary>
    /// The admin listener's pipeline: OpenTelemetry's Prometheus exporter serves <c>/metrics</c>, everything else is
    /// <see cref="HandleAsync"/>. Built over the gateway's services but apart from the public pipeline and its route
    /// table, which the public listeners' requests are matched against.
    /// </summary>
    internal static RequestDelegate BuildPipeline(IServiceProvider services)
    {
        var admin = new ApplicationBuilder(services);
        admin.UsePrometheusScrapingEndpoint();
        admin.Run(HandleAsync);
        return admin.Build();
    }

    private static Task HandleAsync(HttpContext context)
    {
        if (AdminApi.Handles(context.Request.Path))
        {
            return AdminApi.HandleAsync(context);
        }
        var response = context.Response;
        response.ContentType = "text/plain; charset=utf-8";
        response.Headers.CacheControl = "no-store";
        switch (context.Request.Path.Value)
        {
            case "/healthz":
                return response.WriteAsync("ok\n");
            case "/readyz":
                var ready = context.RequestServices.GetRequiredService<Readiness>().IsReady;
                response.StatusCode = ready ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable;
                return response.WriteAsync(ready ? "ready\n" : "not ready\n");
            default:
                response.StatusCode = StatusCodes.Status404NotFound;
                return response.WriteAsync("not found: the admin listener serves /healthz, /readyz, /metrics and the API at /connections and /clusters\n");
        }
    }
}
