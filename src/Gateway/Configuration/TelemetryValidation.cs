using System.Globalization;
using Gateway.Http;

namespace Gateway.Configuration;

/// <summary>Checks <c>Gateway:Telemetry</c> at load, each mistake named by its key.</summary>
internal static class TelemetryValidation
{
    private const string Otlp = $"{GatewayOptions.SectionName}:Telemetry:Otlp";
    private const string Tracing = $"{GatewayOptions.SectionName}:Telemetry:Tracing";

    /// <summary>gRPC's well-known OTLP port (the OTLP specification: 4317 for gRPC, 4318 for HTTP).</summary>
    private const int GrpcPort = 4317;

    public static void Validate(TelemetryOptions options)
    {
        var otlp = options.Otlp;
        if (otlp.IsEnabled)
        {
            if (!Uri.TryCreate(otlp.Endpoint!.Trim(), UriKind.Absolute, out var endpoint) || endpoint.Scheme is not ("http" or "https")
                || string.IsNullOrEmpty(endpoint.Host))
            {
                throw new GatewayConfigurationException($"{Otlp}:Endpoint", $"'{otlp.Endpoint}' is not an absolute http:// or https:// URL");
            }
            if (endpoint.Query.Length > 0 || endpoint.Fragment.Length > 0)
            {
                throw new GatewayConfigurationException($"{Otlp}:Endpoint", $"'{otlp.Endpoint}' has a query or fragment; give the collector's base URL");
            }
            otlp.Endpoint = endpoint.AbsoluteUri;
        }
        if (otlp.Protocol is { } protocol && Normalize(protocol) is null)
        {
            var why = protocol.Trim().Equals("http/json", StringComparison.OrdinalIgnoreCase)
                ? "'http/json' is not supported by the OTLP exporter of this build; use grpc or http/protobuf"
                : $"'{protocol}' is not grpc or http/protobuf";
            throw new GatewayConfigurationException($"{Otlp}:Protocol", why);
        }
        if (otlp.ExportInterval <= TimeSpan.Zero || otlp.ExportInterval.TotalMilliseconds > int.MaxValue)
        {
            throw new GatewayConfigurationException($"{Otlp}:ExportInterval", $"{otlp.ExportInterval:c} is not a positive duration of at most 24 days");
        }
        foreach (var (name, value) in otlp.Headers)
        {
            // RFC 9110 section 5.1: a field name is a token; section 5.5: a value holds no CR, LF or NUL.
            if (!HttpSyntax.IsToken(name))
            {
                throw new GatewayConfigurationException($"{Otlp}:Headers:{name}", "is not a valid header name (RFC 9110 section 5.1)");
            }
            if (value.Any(c => c is '\r' or '\n' or '\0' || char.IsControl(c) && c != '\t'))
            {
                throw new GatewayConfigurationException($"{Otlp}:Headers:{name}", "holds a control character (RFC 9110 section 5.5)");
            }
        }

        var tracing = options.Tracing;
        if (double.IsNaN(tracing.SampleRatio) || tracing.SampleRatio is < 0 or > 1)
        {
            throw new GatewayConfigurationException($"{Tracing}:SampleRatio",
                $"{tracing.SampleRatio.ToString(CultureInfo.InvariantCulture)} is not between 0 and 1");
        }
        if (tracing.Enabled && !otlp.IsEnabled)
        {
            throw new GatewayConfigurationException($"{Tracing}:Enabled", $"spans are exported only over OTLP: set {Otlp}:Endpoint too");
        }
        if (tracing.Enabled && !otlp.Traces)
        {
            throw new GatewayConfigurationException($"{Otlp}:Traces", $"is false while {Tracing}:Enabled is true: the spans would go nowhere");
        }
    }

    /// <summary>
    /// The protocol in force: the configured one, else gRPC for an endpoint on gRPC's well-known port 4317 and
    /// http/protobuf (the OTLP specification's default) for any other.
    /// </summary>
    public static string ProtocolOf(OtlpOptions otlp)
    {
        if (otlp.Protocol is { } configured && Normalize(configured) is { } known)
        {
            return known;
        }
        return otlp.IsEnabled && new Uri(otlp.Endpoint!).Port == GrpcPort ? OtlpOptions.Grpc : OtlpOptions.HttpProtobuf;
    }

    private static string? Normalize(string protocol) => protocol.Trim().ToLowerInvariant() switch
    {
        OtlpOptions.Grpc => OtlpOptions.Grpc,
        OtlpOptions.HttpProtobuf => OtlpOptions.HttpProtobuf,
        _ => null,
    };
}
