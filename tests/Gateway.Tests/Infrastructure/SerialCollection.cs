namespace Gateway.Tests.Infrastructure;

/// <summary>
/// Tests that measure time (keepalive, reaping) or load the machine (floods) run alone, after the parallel ones:
/// on two cores a flood next door would starve the timers a keepalive test is checking.
/// Tests that read values from /metrics run here too: the OpenTelemetry SDK merges the same-named instruments of every
/// gateway in the test process, and when a parallel test disposes its gateway the merged series (gateway_*, kestrel_*)
/// disappear from the other gateways' /metrics after the next scrape.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SerialCollection
{
    public const string Name = "Serial: timing-sensitive or machine-loading";
}
