using System.Text.Json.Nodes;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Telemetry;

/// <summary>Gateway configurations for the telemetry tests: one route (a unique id) to one backend, OTLP to a receiver.</summary>
public static class TelemetryConfig
{
    public const string Cluster = "traced";

    /// <summary>A route id no other test uses, so spans and series can be told apart in the shared test process.</summary>
    public static string NewRoute(string prefix) => $"{prefix}-{Guid.NewGuid():N}"[..(prefix.Length + 9)];

    /// <param name="otlp">The <c>Gateway:Telemetry:Otlp</c> object (null: no OTLP).</param>
    /// <param name="tracing">The <c>Gateway:Telemetry:Tracing</c> object (null: the default, off).</param>
    public static JsonObject Build(string route, string pathPrefix, Uri backend, JsonObject? otlp, JsonObject? tracing = null,
        Action<JsonObject>? configureCluster = null)
    {
        var proxy = GatewayServer.Proxy([(route, pathPrefix, Cluster)], []);
        var destinations = new JsonObject { ["backend"] = new JsonObject { ["Address"] = backend.ToString() } };
        var cluster = new JsonObject { ["Destinations"] = destinations };
        configureCluster?.Invoke(cluster);
        proxy["Clusters"]![Cluster] = cluster;
        var config = GatewayServer.Config(proxy);
        var telemetry = new JsonObject();
        if (otlp is not null)
        {
            telemetry["Otlp"] = otlp;
        }
        if (tracing is not null)
        {
            telemetry["Tracing"] = tracing;
        }
        config["Gateway"]!["Telemetry"] = telemetry;
        return config;
    }

    public static JsonObject Otlp(OtlpReceiver receiver, string protocol = "http/protobuf", string interval = "00:00:00.200",
        bool metrics = true, bool traces = true) => new()
    {
        ["Endpoint"] = receiver.Endpoint.ToString(),
        ["Protocol"] = protocol,
        ["ExportInterval"] = interval,
        ["Metrics"] = metrics,
        ["Traces"] = traces,
    };

    public static JsonObject Tracing(bool enabled = true, double sampleRatio = 1.0) => new()
    {
        ["Enabled"] = enabled,
        ["SampleRatio"] = sampleRatio,
    };
}
