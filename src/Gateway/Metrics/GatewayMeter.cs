using System.Diagnostics.Metrics;

namespace Gateway.Metrics;

/// <summary>
/// The gateway's one <see cref="Meter"/> (System.Diagnostics.Metrics), created through <see cref="IMeterFactory"/> so
/// tests and the exporter see exactly this process's instruments. Each feature keeps its own instruments in a
/// class of its own folder and creates them from this meter.
/// </summary>
internal sealed class GatewayMeter
{
    public const string Name = "Gateway";

    public GatewayMeter(IMeterFactory factory) => Meter = factory.Create(Name);

    public Meter Meter { get; }

    /// <summary>The gateway's own traffic, which the instruments of this meter do not record.</summary>
    internal InternalTraffic InternalTraffic { get; } = new();
}
