using Gateway.KeepAlive;

namespace Gateway.Relay;

/// <summary>
/// Shutdown begins with the tunnels: each gets a Close 1001 on both sides while the server still runs, instead of the
/// cut connection a stopping server would give it.
/// </summary>
internal sealed class TunnelDrain(KeepAliveSweeper sweeper, IHostApplicationLifetime lifetime, ILogger<TunnelDrain> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        lifetime.ApplicationStopping.Register(DrainAll);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private void DrainAll()
    {
        var tunnels = sweeper.Snapshot();
        Log.Draining(logger, tunnels.Count);
        foreach (var tunnel in tunnels)
        {
            tunnel.Drain();
        }
    }
}
