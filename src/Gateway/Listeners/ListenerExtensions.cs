using Gateway.Configuration;
using Gateway.Tls;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Gateway.Listeners;

internal static class ListenerExtensions
{
    /// <summary>
    /// Kestrel's endpoints from the file (public listeners with their TLS, the admin listener), its socket transport
    /// settings, the shutdown timeout, the open-file budget that handshakes are admitted against, and the PROXY protocol
    /// on the listeners that take it.
    /// </summary>
    public static WebApplicationBuilder UseGatewayListeners(this WebApplicationBuilder builder, GatewayOptions options,
        CertificateStore? certificates)
    {
        builder.Services.AddSingleton(services => FileDescriptorLimit.FromProcess(
            services.GetRequiredService<ILoggerFactory>().CreateLogger("Gateway.Listeners")));
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.AddSingleton<ProxyProtocolReporter>();
        builder.Services.AddSingleton<Yarp.ReverseProxy.Transforms.Builder.ITransformProvider, EmptyHostTransforms>();
        var bound = new BoundListeners();
        builder.Services.AddSingleton(bound);
        builder.WebHost.ConfigureKestrel(kestrel => KestrelListeners.Configure(kestrel, options, certificates, bound));
        builder.WebHost.UseShutdownTimeout(options.ShutdownTimeout);
        builder.WebHost.UseSockets(sockets =>
        {
            sockets.Backlog = options.ListenBacklog;
            sockets.UnsafePreferInlineScheduling = options.InlineCompletions;
            if (options.ReusePort)
            {
                sockets.CreateBoundListenSocket = ReusePortListenSockets.For(options).CreateBoundListenSocket;
            }
        });
        if (options.SocketTakeover)
        {
            // Registered after Kestrel's socket transport, so Kestrel (which tries the last registered first) binds the
            // public listeners with this one; the admin server has a transport of its own.
            builder.Services.AddSingleton<IConnectionListenerFactory>(services => new Takeover.TakeoverTransportFactory(options,
                services.GetService<IMemoryPoolFactory<byte>>(), services.GetRequiredService<ILoggerFactory>()));
        }
        builder.Services.AddHostedService<ListenerStartupLog>();
        // The runtime's half of inline completions is set before the builder: InlineSocketCompletions.Prepare.
        return builder;
    }
}
