namespace Gateway.Lifecycle;

/// <summary>
/// Ready once the configuration is loaded, the listeners are bound and the startup warm-up (if any) has finished;
/// not ready again once shutdown (drain) begins.
/// </summary>
internal sealed class Readiness
{
    private volatile bool _started;
    private volatile bool _stopping;
    private int _pending;

    public Readiness(IHostApplicationLifetime lifetime)
    {
        lifetime.ApplicationStarted.Register(() => _started = true);
        lifetime.ApplicationStopping.Register(() => _stopping = true);
    }

    public bool IsReady => _started && !_stopping && Volatile.Read(ref _pending) == 0;

    /// <summary>Shutdown has begun: not ready from now on.</summary>
    public void BeginDraining() => _stopping = true;

    /// <summary>Holds readiness back until the returned handle is disposed (startup work that must finish first).</summary>
    public IDisposable Hold()
    {
        Interlocked.Increment(ref _pending);
        return new Release(this);
    }

    private sealed class Release(Readiness readiness) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                Interlocked.Decrement(ref readiness._pending);
            }
        }
    }
}
