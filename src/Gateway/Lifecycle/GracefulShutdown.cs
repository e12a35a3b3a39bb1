using Gateway.Configuration;
using Gateway.Relay;
using Microsoft.AspNetCore.Hosting.Server;

namespace Gateway.Lifecycle;

/// <summary>
/// The drain a load balancer can follow, as one sequence on SIGTERM (or any stop of the host):
/// <list type="number">
/// <item><c>/readyz</c> says 503 at once (<see cref="Readiness"/> hears the host stopping);</item>
/// <item>the listeners keep accepting for <c>Drain:Delay</c>, while the balancer's health checks notice;</item>
/// <item>then they stop (Kestrel unbinds and waits for the open connections); the admin listener, a server of its own
/// (<see cref="Admin.AdminServer"/>), keeps answering health, readiness (503) and metrics until the process exits;</item>
/// <item>the open tunnels get a Close 1001 "gateway shutting down" on both sides, spread evenly over
/// <c>Drain:Period</c>, so their clients reconnect to the other replicas over that time instead of in one instant;</item>
/// <item>the process exits once they are gone (at once when the last one ends, whatever slots of the spread are left),
/// or at <c>ShutdownTimeout</c>, when Kestrel cuts what is left.</item>
/// </list>
/// </summary>
/// <remarks>
/// It runs in the host's <c>StoppingAsync</c> stage, before any hosted service stops (the web server's included,
/// whatever the order they were registered in). Stopping Kestrel here and again from the host is safe: its StopAsync
/// runs once, and a second call awaits the first.
/// </remarks>
internal sealed class GracefulShutdown(GatewayOptions options, KeepAliveSweeper tunnels, IServer server, Readiness readiness,
    TimeProvider time, ILogger<GracefulShutdown> logger) : IHostedLifecycleService
{
    /// <summary>How often the drain looks at the clock while it spreads its closes, and while it waits for the peers.</summary>
    private static readonly TimeSpan Step = TimeSpan.FromMilliseconds(20);

    private readonly DrainOptions _drain = options.Drain;

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        // Not ready from the first moment, whoever asked the host to stop (SIGTERM also says so through the lifetime).
        readiness.BeginDraining();
        try
        {
            Log.DrainStarted(logger, tunnels.OpenTunnels, _drain.Delay.TotalSeconds, _drain.Period.TotalSeconds);
            if (_drain.Delay > TimeSpan.Zero)
            {
                await Task.Delay(_drain.Delay, time, cancellationToken).ConfigureAwait(false);
            }
            // No new connections from here on; the ones open are waited for (until the host's timeout cancels).
            var serverStopped = server.StopAsync(cancellationToken);

            var open = tunnels.Snapshot();
            Log.ClosingTunnels(logger, open.Count);
            // Ends as soon as no tunnel is open: the slots of tunnels that ended on their own are not waited for.
            await SpreadClose.RunAsync(open, _drain.Period, static tunnel => tunnel.Drain(), time, cancellationToken,
                () => tunnels.OpenTunnels == 0).ConfigureAwait(false);
            // Tunnels that opened while the first ones closed (an HTTP/2 stream on a connection still open) go at once.
            foreach (var late in tunnels.Snapshot())
            {
                late.Drain();
            }
            while (tunnels.OpenTunnels > 0)
            {
                await Task.Delay(Step, time, cancellationToken).ConfigureAwait(false);
            }
            await serverStopped.ConfigureAwait(false);
            Log.DrainFinished(logger);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // ShutdownTimeout: Kestrel aborts the connections still open.
            Log.DrainCutShort(logger, tunnels.OpenTunnels);
        }
    }
}
