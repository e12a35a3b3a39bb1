namespace Gateway.Admin;

/// <summary>Ready once the configuration is loaded and the listeners are bound; not ready again once shutdown (drain) begins.</summary>
public sealed class Readiness
{
    private volatile bool _ready;

    public Readiness(IHostApplicationLifetime lifetime)
    {
        lifetime.ApplicationStarted.Register(() => _ready = true);
        lifetime.ApplicationStopping.Register(() => _ready = false);
    }

    public bool IsReady => _ready;
}
