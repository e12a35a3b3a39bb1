using Gateway.Handshake;
using System.Diagnostics;
using System.Text.Json.Nodes;
using Gateway.Telemetry;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Telemetry;

/// <summary>
/// W3C trace context through the gateway: the handshake span continues the client's <c>traceparent</c>, and the
/// backend's handshake request carries the span's own context, over both ways a handshake leaves the gateway (its own
/// connector, and SocketsHttpHandler for clusters whose HttpClient settings need it). Sampling is parent-based.
/// </summary>
[Collection(TelemetryCollection.Name)]
public sealed class TraceContextTests
{
    private static readonly TimeSpan Within = TimeSpan.FromSeconds(15);

    private const string ClientTraceId = "4bf92f3577b34da6a3ce929d0e0e4736";
    private const string ClientSpanId = "00f067aa0ba902b7";

    /// <summary>
    /// How the handshake leaves: the gateway's connector; SocketsHttpHandler (a cluster setting only it honours); and
    /// SocketsHttpHandler with ASP.NET Core's request activity current (its hosting log category turned on), which
    /// SocketsHttpHandler's own propagation would otherwise send instead.
    /// </summary>
    public static TheoryData<string> Connectors() => new() { Connector, Sockets, SocketsUnderHostingActivity };

    private const string Connector = "connector";
    private const string Sockets = "sockets";
    private const string SocketsUnderHostingActivity = "sockets+hosting-activity";

    [Theory]
    [MemberData(nameof(Connectors))]
    public async Task The_backend_sees_the_clients_trace_with_the_gateways_span_as_parent(string connector)
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        await using var backend = new RawBackend();
        var route = TelemetryConfig.NewRoute("parent");
        using var spans = new SpanRecorder(route);
        await using var gateway = await StartAsync(receiver, backend, route, connector, sampleRatio: 1.0);

        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/ws",
            $"traceparent: 00-{ClientTraceId}-{ClientSpanId}-01", "tracestate: vendor=opaque");

        var span = await Retry.Eventually(() => Task.FromResult(Assert.Single(spans.Stopped)), Within);
        Assert.Equal(ClientTraceId, span.TraceId.ToHexString());
        Assert.Equal(ClientSpanId, span.ParentSpanId.ToHexString());
        Assert.True(span.HasRemoteParent);
        var head = Assert.Single(backend.Heads);
        Assert.Equal($"00-{ClientTraceId}-{span.SpanId.ToHexString()}-01", Assert.Single(HeaderValues(head, "traceparent")));
        Assert.Equal("vendor=opaque", Assert.Single(HeaderValues(head, "tracestate")));
    }

    [Theory]
    [MemberData(nameof(Connectors))]
    public async Task Without_a_traceparent_the_span_starts_a_trace_the_backend_continues(string connector)
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        await using var backend = new RawBackend();
        var route = TelemetryConfig.NewRoute("root");
        using var spans = new SpanRecorder(route);
        await using var gateway = await StartAsync(receiver, backend, route, connector, sampleRatio: 1.0);

        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/ws");

        var span = await Retry.Eventually(() => Task.FromResult(Assert.Single(spans.Stopped)), Within);
        Assert.Equal(default, span.ParentSpanId);
        var head = Assert.Single(backend.Heads);
        // Sampled; OpenTelemetry 1.21 also sets W3C Trace Context level 2's "random" flag (02) on the traces it starts.
        var traceParent = Assert.Single(HeaderValues(head, "traceparent"));
        Assert.StartsWith($"00-{span.TraceId.ToHexString()}-{span.SpanId.ToHexString()}-", traceParent);
        Assert.Equal(1, TraceFlags(traceParent) & 1);
        Assert.Empty(HeaderValues(head, "tracestate"));
    }

    [Fact]
    public async Task With_tracing_off_the_clients_traceparent_reaches_the_backend_untouched()
    {
        await using var backend = new RawBackend();
        var route = TelemetryConfig.NewRoute("off");
        await using var gateway = await GatewayServer.StartAsync(TelemetryConfig.Build(route, "/ws", backend.Address, otlp: null));
        var traceParent = $"00-{ClientTraceId}-{ClientSpanId}-01";

        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/ws", $"traceparent: {traceParent}");

        Assert.Equal(traceParent, Assert.Single(HeaderValues(Assert.Single(backend.Heads), "traceparent")));
    }

    /// <summary>Client's trace flags ("" for no traceparent), the sample ratio, and whether the span is recorded.</summary>
    public static TheoryData<string, double, bool> Sampling() => new()
    {
        { "", 0.0, false },
        { "01", 0.0, true },
        { "00", 1.0, false },
        { "", 1.0, true },
    };

    [Theory]
    [MemberData(nameof(Sampling))]
    public async Task Sampling_follows_the_clients_decision_and_else_the_ratio(string clientFlags, double sampleRatio, bool recorded)
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        await using var backend = new RawBackend();
        var route = TelemetryConfig.NewRoute("sampled");
        using var spans = new SpanRecorder(route);
        var gateway = await StartAsync(receiver, backend, route, Connector, sampleRatio);
        string traceParent;
        try
        {
            var headers = clientFlags.Length == 0 ? Array.Empty<string>() : new[] { $"traceparent: 00-{ClientTraceId}-{ClientSpanId}-{clientFlags}" };
            await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/ws", headers);
            traceParent = Assert.Single(HeaderValues(Assert.Single(backend.Heads), "traceparent"));
            // The backend hears the decision either way, in the trace flags.
            Assert.Equal(recorded ? 1 : 0, TraceFlags(traceParent) & 1);
            if (clientFlags.Length > 0)
            {
                // A trace the client started keeps the client's other flags (none here).
                Assert.EndsWith(recorded ? "-01" : "-00", traceParent);
            }
            if (clientFlags.Length > 0)
            {
                Assert.StartsWith($"00-{ClientTraceId}-", traceParent);
            }
            var traceId = traceParent.Split('-')[1];
            var span = await Retry.Eventually(() => Task.FromResult(Assert.Single(spans.StoppedAll, s => s.TraceId.ToHexString() == traceId)), Within);
            Assert.Equal(recorded, span.Recorded);
            Assert.Equal(recorded, span.IsAllDataRequested);
        }
        finally
        {
            await gateway.DisposeAsync();
        }
        var exported = receiver.At("/v1/traces").Any(t => t.Contains(HandshakeTracing.SpanName));
        Assert.Equal(recorded, exported);
    }

    private static Task<GatewayServer> StartAsync(OtlpReceiver receiver, RawBackend backend, string route, string connector, double sampleRatio)
    {
        var config = TelemetryConfig.Build(route, "/ws", backend.Address,
            TelemetryConfig.Otlp(receiver, metrics: false), TelemetryConfig.Tracing(sampleRatio: sampleRatio),
            cluster =>
            {
                if (connector != Connector)
                {
                    // A setting only SocketsHttpHandler honours: the gateway's own connector steps aside for it.
                    cluster["HttpClient"] = new JsonObject { ["RequestHeaderEncoding"] = "utf-8" };
                }
            });
        if (connector == SocketsUnderHostingActivity)
        {
            // With this category on, ASP.NET Core starts an activity for every request, which is then Activity.Current.
            config["Logging"]!["LogLevel"]!["Microsoft.AspNetCore.Hosting.Diagnostics"] = "Information";
        }
        return GatewayServer.StartAsync(config);
    }

    private static string[] HeaderValues(string head, string name) =>
        head.Split("\r\n")
            .Where(line => line.StartsWith(name + ":", StringComparison.OrdinalIgnoreCase))
            .Select(line => line[(name.Length + 1)..].Trim())
            .ToArray();

    /// <summary>The trace-flags field of a traceparent (W3C Trace Context: the sampled flag is bit 0).</summary>
    private static int TraceFlags(string traceParent) =>
        int.Parse(traceParent[(traceParent.LastIndexOf('-') + 1)..], System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture);
}
