using Microsoft.AspNetCore.Server.Kestrel.Core;
using Yarp.ReverseProxy.Transforms.Builder;

namespace Gateway.Handshake;

public static class HandshakeGateExtensions
{
    /// <summary>
    /// The gate's services, the backend subprotocol check (a YARP transform provider: registered before
    /// <c>AddReverseProxy</c>, it runs before the other response transforms), and Kestrel's limits from the file.
    /// </summary>
    public static IServiceCollection AddHandshakeGate(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddSingleton<HandshakePolicies>();
        services.AddSingleton<HandshakeMetrics>();
        services.AddSingleton(provider => new RefusalReporter(
            provider.GetRequiredService<HandshakeMetrics>(),
            provider.GetRequiredService<ILoggerFactory>().CreateLogger(RefusalReporter.LogCategory),
            TimeProvider.System,
            logInterval: TimeSpan.FromSeconds(1)));
        services.AddSingleton<ITransformProvider, BackendSubprotocolCheck>();
        services.Configure<KestrelServerOptions>(kestrel => KestrelLimits.Apply(kestrel.Limits, configuration));
        return services;
    }

    /// <summary>Adds the handshake gate to YARP's proxy pipeline; call it first, before any backend is chosen.</summary>
    public static IReverseProxyApplicationBuilder UseHandshakeGate(this IReverseProxyApplicationBuilder proxy)
    {
        proxy.UseMiddleware<HandshakeGateMiddleware>();
        return proxy;
    }
}
