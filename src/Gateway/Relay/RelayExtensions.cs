using Gateway.AccessLogging;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Transforms.Builder;

namespace Gateway.Relay;

internal static class RelayExtensions
{
    /// <summary>
    /// The relay's services: its metrics, the keepalive sweep, and the WebSocket response
    /// transforms (registered before <c>AddReverseProxy</c>, so they run before YARP's own).
    /// </summary>
    public static IServiceCollection AddWebSocketRelay(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<RelayMetrics>();
        services.AddSingleton(provider => new AccessLogWriter(
            provider.GetRequiredService<Configuration.GatewayOptions>(), provider.GetRequiredService<ILoggerFactory>()));
        services.AddSingleton<KeepAliveSweeper>();
        services.AddHostedService(provider => provider.GetRequiredService<KeepAliveSweeper>());
        services.AddSingleton<ITransformProvider, WebSocketResponseTransforms>();
        return services;
    }

    /// <summary>
    /// Puts the relay after YARP's forwarder (<see cref="RelayForwarder"/>): called after <c>AddReverseProxy</c>, whose
    /// forwarder it wraps.
    /// </summary>
    public static IServiceCollection AddRelayForwarder(this IServiceCollection services)
    {
        var yarp = services.LastOrDefault(service => service.ServiceType == typeof(IHttpForwarder))
            ?? throw new InvalidOperationException("AddRelayForwarder must follow AddReverseProxy");
        services.Remove(yarp);
        services.AddSingleton<IHttpForwarder>(provider => new RelayForwarder(yarp.ImplementationType is { } type
            ? (IHttpForwarder)ActivatorUtilities.CreateInstance(provider, type)
            : yarp.ImplementationFactory is { } factory ? (IHttpForwarder)factory(provider) : (IHttpForwarder)yarp.ImplementationInstance!));
        return services;
    }

    /// <summary>
    /// Adds the frame-aware relay to YARP's proxy pipeline: last, right before the forwarder and inside passive health,
    /// which then hears the relay's verdict on how each tunnel ended.
    /// </summary>
    public static IReverseProxyApplicationBuilder UseWebSocketRelay(this IReverseProxyApplicationBuilder proxy)
    {
        proxy.UseMiddleware<RelayMiddleware>();
        return proxy;
    }
}
