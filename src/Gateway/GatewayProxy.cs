using Gateway.Configuration;
using Gateway.Handshake;
using Gateway.Health;
using Gateway.KeyRing;
using Gateway.Lifecycle;
using Gateway.LoadBalancing;
using Gateway.Proxy;
using Gateway.Relay;
using Microsoft.AspNetCore.DataProtection;

namespace Gateway;

/// <summary>
/// YARP and the gateway's parts around it, wired in the one order they work in: the table of contents of a handshake's
/// way through the proxy, beside <see cref="GatewayApplication"/>. It lives outside every capability folder because it
/// names them all (the gate, drains, affinity, balancing, health, the relay), which no folder may.
/// </summary>
internal static class GatewayProxy
{
    /// <summary>
    /// YARP from the file's <c>ReverseProxy</c> section with the gateway's defaults, the backend connector for WebSocket
    /// upgrades, the key ring that encrypts affinity cookies, the <c>ConsistentHash</c> load-balancing policy, and the
    /// proxy's metrics.
    /// </summary>
    public static WebApplicationBuilder AddGatewayProxy(this WebApplicationBuilder builder, GatewayOptions options, string shownFile)
    {
        var dataProtection = builder.Services.AddDataProtection().SetApplicationName(options.DataProtection.ApplicationName);
        if (options.DataProtection.KeyDirectory is { } keyDirectory)
        {
            EnsureWritableDirectory(keyDirectory, shownFile);
            dataProtection.PersistKeysToFileSystem(new DirectoryInfo(keyDirectory));
            builder.Services.AddKeyRingSeed(keyDirectory);
        }

        // Before AddReverseProxy, whose TryAdd then keeps this factory: the backend leg of a WebSocket on a socket of its own.
        builder.Services.AddSingleton<Yarp.ReverseProxy.Forwarder.IForwarderHttpClientFactory, GatewayHttpClientFactory>();
        builder.Services.AddSingleton(SourceAddresses.From(options.Upstream));
        builder.Services.AddSingleton<SourceAddressExhaustion>();
        builder.Services.AddReverseProxy()
            .LoadFromConfig(builder.Configuration.GetSection(GatewayOptions.ReverseProxySectionName))
            .AddConfigFilter<ProxyConfigDefaults>();
        builder.Services.AddConsistentHash();
        builder.Services.AddTunnelAwareBalancing();
        // After AddReverseProxy: takes the place of YARP's TransportFailureRate passive health policy.
        builder.Services.AddGatewayPassiveHealth();
        // YARP's route Timeout and TimeoutPolicy are ASP.NET Core request timeouts: without the middleware every request on
        // such a route fails. YARP turns the timeout off once a WebSocket is upgraded, so it never cuts a tunnel.
        builder.Services.AddRequestTimeouts();
        builder.Services.AddSingleton<ProxyMetrics>();
        builder.Services.AddConnectRetry();
        return builder;
    }

    /// <summary>
    /// YARP's proxy pipeline, in one place because its order matters: the gateway's gate first (before any backend is
    /// chosen); the connect retry, which runs everything after it again on another destination when a connect fails;
    /// the operator's destination drains (before affinity, whose failure policy then redirects a client); YARP's affinity
    /// and load balancing; then the gateway's tunnel forwarder, where every WebSocket handshake ends (it reports to passive
    /// health itself, once the tunnel is over); plain HTTP goes on to passive health and YARP's forwarder. The error count
    /// is outermost, so a handshake that a retry saved is not an error.
    /// </summary>
    public static WebApplication MapGatewayProxy(this WebApplication app)
    {
        // Its counter exists from the start, at 0, like every other instrument.
        app.Services.GetRequiredService<SourceAddressExhaustion>();
        app.UseRequestTimeouts();
        app.MapReverseProxy(proxy =>
        {
            proxy.UseMiddleware<ProxyErrorsMiddleware>();
            proxy.UseMiddleware<RouteTimeoutStatusMiddleware>();
            proxy.UseHandshakeGate();
            proxy.UseConnectRetry();
            proxy.UseDestinationDrains();
            proxy.UseSessionAffinity();
            proxy.UseLoadBalancing();
            proxy.UseTunnelForwarder();
            proxy.UsePassiveHealthChecks();
        });
        return app;
    }

    private static void EnsureWritableDirectory(string directory, string shownFile)
    {
        try
        {
            Directory.CreateDirectory(directory);
            var probe = Path.Combine(directory, $".write-test-{Environment.ProcessId}");
            File.WriteAllText(probe, string.Empty);
            File.Delete(probe);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new GatewayStartupException(
                $"{shownFile}: {GatewayOptions.SectionName}:DataProtection:KeyDirectory: cannot write to '{directory}': {ex.Message}",
                GatewayStartupException.ConfigurationExitCode, ex);
        }
    }
}
