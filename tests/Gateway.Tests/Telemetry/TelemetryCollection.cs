namespace Gateway.Tests.Telemetry;

/// <summary>
/// The tests that trace run one at a time: every tracing gateway's provider listens to the one <c>Gateway</c> source of
/// the process, and the tracing-off tests count every span started while they run.
/// </summary>
[CollectionDefinition(Name)]
public sealed class TelemetryCollection
{
    public const string Name = "Telemetry: handshake spans";
}
