using Gateway.AccessLogging;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Gateway.Relay;

internal static class RelayExtensions
{
    /// <summary>
    /// The relay's services: its metrics, the access log and the keepalive sweep.
    /// </summary>
    public static IServiceCollection AddWebSocketRelay(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<RelayMetrics>();
        services.AddSingleton(provider => new AccessLogWriter(
            provider.GetRequiredService<Configuration.GatewayOptions>(), provider.GetRequiredService<ILoggerFactory>()));
        services.AddSingleton<KeepAliveSweeper>();
        services.AddHostedService(provider => provider.GetRequiredService<KeepAliveSweeper>());
        return services;
    }

    /// <summary>
    /// Adds the gateway's tunnel forwarder to YARP's proxy pipeline, after load balancing and before passive health: it
    /// ends the pipeline for each WebSocket handshake (the steps after it serve plain HTTP) and reports each tunnel's
    /// outcome to the cluster's passive health policy itself, when the tunnel is over.
    /// </summary>
    public static IReverseProxyApplicationBuilder UseTunnelForwarder(this IReverseProxyApplicationBuilder proxy)
    {
        proxy.UseMiddleware<TunnelForwarder>();
        return proxy;
    }
}
