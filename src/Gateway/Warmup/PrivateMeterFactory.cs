using System.Diagnostics.Metrics;

namespace Gateway.Warmup;

/// <summary>
/// The meter factory of the warm-up's echo backend. Its Kestrel and hosting meters would otherwise carry the very names
/// the gateway's own do (<c>Microsoft.AspNetCore.Server.Kestrel</c>, ...), so the meter provider behind /metrics would
/// count the private server's connections, and, when that server's meters were disposed with it, take the gateway's
/// instruments of the same names for disposed too and stop exporting them (the framework series vanished after the
/// first scrape). Under a prefix of their own no provider subscribes to them.
/// </summary>
internal sealed class PrivateMeterFactory : IMeterFactory
{
    public const string Prefix = "Gateway.Warmup.EchoBackend.";

    private readonly List<Meter> _meters = [];

    public Meter Create(MeterOptions options)
    {
        var meter = new Meter(new MeterOptions(Prefix + options.Name) { Version = options.Version, Tags = options.Tags, Scope = this });
        lock (_meters)
        {
            _meters.Add(meter);
        }
        return meter;
    }

    public void Dispose()
    {
        lock (_meters)
        {
            foreach (var meter in _meters)
            {
                meter.Dispose();
            }
            _meters.Clear();
        }
    }
}
