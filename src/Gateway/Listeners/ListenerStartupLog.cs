using Gateway.Configuration;

namespace Gateway.Listeners;

/// <summary>
/// Once Kestrel has bound everything, one line per listener with the address it really got: with port 0, or with
/// several processes on one host (<c>ReusePort</c>), the log is where an operator finds each process's admin port.
/// </summary>
internal sealed partial class ListenerStartupLog(BoundListeners bound, GatewayOptions options, IHostApplicationLifetime lifetime,
    ILoggerFactory loggers) : IHostedService
{
    private readonly ILogger _logger = loggers.CreateLogger("Gateway.Listeners");

    public Task StartAsync(CancellationToken cancellationToken)
    {
        lifetime.ApplicationStarted.Register(LogBound);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    private void LogBound()
    {
        foreach (var (listener, endPoint) in bound.All)
        {
            var role = listener.IsAdmin ? "admin: /healthz, /readyz, /metrics"
                : listener.WarmupOnly ? "private to this process, for the warm-up"
                : options.ReusePort && options.Listeners.TryGetValue(listener.Name, out var configured) && configured.Port is > 0 ? "public, SO_REUSEPORT: shared with the other gateway processes on this port"
                : "public";
            Bound(_logger, listener.Name, endPoint?.ToString() ?? "(not an IP endpoint)", role, Environment.ProcessId);
        }
    }

    [LoggerMessage(EventId = 152, Level = LogLevel.Information, Message = "Listener {Listener} bound to {EndPoint} ({Role}); process {ProcessId}")]
    private static partial void Bound(ILogger logger, string listener, string endPoint, string role, int processId);
}
