namespace Gateway.Tests.Infrastructure;

/// <summary>
/// Tests that measure time (keepalive, reaping) or load the machine (floods) run alone, after the parallel ones:
/// on two cores a flood next door would starve the timers a keepalive test is checking.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SerialCollection
{
    public const string Name = "Serial: timing-sensitive or machine-loading";
}
