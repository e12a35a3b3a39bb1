using System.Runtime.InteropServices;

namespace Gateway.Configuration;

/// <summary>
/// SIGHUP, the Unix daemon's "reload your files": reads the configuration file at once and tells the subscribers
/// (the TLS certificates) to reload theirs. Without this handler SIGHUP would end the process.
/// </summary>
internal sealed class ReloadSignal : IHostedService, IDisposable
{
    private readonly ReloadableJsonConfigurationSource _source;
    private readonly ILogger<ReloadSignal> _logger;
    private PosixSignalRegistration? _registration;

    public ReloadSignal(ReloadableJsonConfigurationSource source, ILogger<ReloadSignal> logger)
    {
        _source = source;
        _logger = logger;
    }

    /// <summary>Raised on SIGHUP, after the configuration file was read, on a thread-pool thread.</summary>
    public event Action? Received;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        try
        {
            _registration = PosixSignalRegistration.Create(PosixSignal.SIGHUP, OnSignal);
        }
        catch (PlatformNotSupportedException)
        {
            // No SIGHUP on this platform: files are still watched.
        }
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        Dispose();
        return Task.CompletedTask;
    }

    public void Dispose()
    {
        _registration?.Dispose();
        _registration = null;
    }

    /// <summary>What SIGHUP does: reload the configuration file, then whatever subscribed.</summary>
    public void Raise()
    {
        Log.ReloadSignalled(_logger, _source.FullPath);
        _source.Reload();
        Received?.Invoke();
    }

    private void OnSignal(PosixSignalContext context)
    {
        // Handled: the default action for SIGHUP is to terminate. The reload runs off the runtime's signal thread.
        context.Cancel = true;
        ThreadPool.QueueUserWorkItem(_ => Raise());
    }
}
