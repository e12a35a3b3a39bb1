using Gateway.Configuration;
using Gateway.Listeners;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.Options;

namespace Gateway.Admin;

/// <summary>
/// The admin listener runs on a Kestrel server of its own. Shutdown stops the public listeners at the end of
/// <c>Drain:Delay</c> by stopping the host's server, which would unbind every endpoint it has; this one stays up through
/// <c>Drain:Period</c> (liveness keeps answering, readiness says 503, the drain can be followed on <c>/metrics</c> and
/// the API) and stops only once every hosted service has, just before the process exits.
/// </summary>
internal sealed class AdminServer(GatewayOptions options, BoundListeners bound, IServiceProvider services, ILoggerFactory loggers)
    : IHostedLifecycleService, IDisposable
{
    private KestrelServer? _server;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (!options.Admin.Enabled)
        {
            return;
        }
        var kestrel = new KestrelServerOptions { AddServerHeader = false, ApplicationServices = services };
        KestrelListeners.ConfigureAdmin(kestrel, options, bound);
        var transport = new SocketTransportFactory(Options.Create(new SocketTransportOptions()), loggers);
        _server = new KestrelServer(Options.Create(kestrel), transport, loggers);
        await _server.StartAsync(new AdminApplication(services), cancellationToken).ConfigureAwait(false);
    }

    public async Task StoppedAsync(CancellationToken cancellationToken)
    {
        if (_server is { } server)
        {
            await server.StopAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public void Dispose() => _server?.Dispose();

    /// <summary>Each admin request as an <see cref="HttpContext"/> over Kestrel's features, with the gateway's services.</summary>
    private sealed class AdminApplication(IServiceProvider services) : IHttpApplication<HttpContext>
    {
        public HttpContext CreateContext(IFeatureCollection contextFeatures) => new DefaultHttpContext(contextFeatures) { RequestServices = services };

        private readonly RequestDelegate _pipeline = AdminEndpoints.BuildPipeline(services);

        public Task ProcessRequestAsync(HttpContext context) => _pipeline(context);

        public void DisposeContext(HttpContext context, Exception? exception)
        {
        }
    }
}
