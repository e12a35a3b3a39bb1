using System.Reflection;
using OpenTelemetry.Resources;

namespace Gateway.Telemetry;

/// <summary>
/// Who is speaking, on every metric and span the gateway exports: <c>service.name</c> <c>gateway</c>, a
/// <c>service.instance.id</c> new for each process start (a UUID, as the semantic conventions recommend; a host name
/// and pid can come back after a restart, while the counters start again from zero), the host name and pid for people
/// to read, and what the standard <c>OTEL_SERVICE_NAME</c> and <c>OTEL_RESOURCE_ATTRIBUTES</c> variables say, which
/// win over all of these.
/// </summary>
internal sealed class TelemetryResource
{
    public const string ServiceName = "gateway";

    public string InstanceId { get; } = Guid.NewGuid().ToString();

    /// <summary>A builder per provider (the SDK builds each once).</summary>
    public ResourceBuilder Builder() => ResourceBuilder.CreateEmpty()
        .AddService(ServiceName, serviceVersion: Version, autoGenerateServiceInstanceId: false, serviceInstanceId: InstanceId)
        .AddAttributes([new("host.name", Environment.MachineName), new("process.pid", Environment.ProcessId)])
        .AddTelemetrySdk()
        // Last, so that the operator's variables override the gateway's own values.
        .AddEnvironmentVariableDetector();

    private static string? Version =>
        typeof(TelemetryResource).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion;
}
