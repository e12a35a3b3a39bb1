using Gateway.Identity;
using Gateway.Listeners;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Gateway.Handshake;

internal static class HandshakeGateExtensions
{
    /// <summary>
    /// The gate's services and Kestrel's limits from the file. (The gate's check of the backend's answer runs among
    /// the relay's response transforms, where their order is set.)
    /// </summary>
    public static IServiceCollection AddHandshakeGate(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddSingleton<HandshakePolicies>();
        services.AddEdgeIdentity();
        services.AddSingleton<UpgradedConnectionLimit>();
        services.AddSingleton<TrustedForwarderSet>();
        services.AddSingleton<HandshakeMetrics>();
        services.AddSingleton(provider => new RefusalReporter(
            provider.GetRequiredService<HandshakeMetrics>(),
            provider.GetRequiredService<ILoggerFactory>().CreateLogger(RefusalReporter.LogCategory),
            TimeProvider.System,
            logInterval: TimeSpan.FromSeconds(1),
            provider.GetService<AccessLogging.AccessLogWriter>()));
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
