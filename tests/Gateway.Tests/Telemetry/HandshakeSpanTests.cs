using System.Diagnostics;
using System.Net.WebSockets;
using System.Text.Json.Nodes;
using Gateway.Handshake;
using Gateway.Telemetry;
using Gateway.Tests.Handshake;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Tests.Telemetry;

/// <summary>
/// <c>Gateway:Telemetry:Tracing</c>: one Server span per WebSocket handshake, ended when the client has its 101 (not when
/// the tunnel ends, never per frame), with its attributes; a refused handshake's span says why, with status Error; with
/// tracing off there is no span and nothing is sent to the collector.
/// </summary>
[Collection(TelemetryCollection.Name)]
public sealed class HandshakeSpanTests
{
    private static readonly TimeSpan Within = TimeSpan.FromSeconds(15);

    [Fact]
    public async Task Each_handshake_is_one_span_that_ends_at_the_101_however_many_messages_follow()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        await using var backend = await Backend.StartAsync("span-backend");
        var route = TelemetryConfig.NewRoute("spans");
        using var spans = new SpanRecorder(route);
        await using var gateway = await GatewayServer.StartAsync(
            TelemetryConfig.Build(route, "/echo", backend.Address, TelemetryConfig.Otlp(receiver, metrics: false), TelemetryConfig.Tracing()));

        const int Handshakes = 3;
        const int Messages = 20;
        for (var i = 0; i < Handshakes; i++)
        {
            using var socket = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/echo", subprotocols: ["chat.v2"]);
            // The span has ended while the tunnel is open: it covers the handshake, not the connection.
            await Retry.Eventually(() => Assert.Equal(i + 1, spans.Stopped.Length), Within);
            for (var m = 0; m < Messages; m++)
            {
                await WebSocketClient.SendTextAsync(socket, $"message {m}");
                await WebSocketClient.ReceiveAsync(socket);
            }
            Assert.Equal(WebSocketCloseStatus.NormalClosure, await WebSocketClient.CloseAsync(socket));
        }

        // Every frame has been relayed and every tunnel closed: a span per frame or per tunnel would have started by now.
        Assert.Equal(Handshakes, spans.Started.Length);
        Assert.Equal(Handshakes, spans.Stopped.Length);
        foreach (var span in spans.Stopped)
        {
            Assert.Equal(HandshakeTracing.SpanName, span.DisplayName);
            Assert.Equal(ActivityKind.Server, span.Kind);
            Assert.Equal(ActivityStatusCode.Unset, span.Status);
            Assert.True(span.Recorded);
            Assert.Equal("GET", Tag(span, SpanAttributes.RequestMethod));
            Assert.Equal("http", Tag(span, SpanAttributes.UrlScheme));
            Assert.Equal("/echo", Tag(span, SpanAttributes.UrlPath));
            Assert.Equal("1.1", Tag(span, SpanAttributes.ProtocolVersion));
            Assert.Equal("127.0.0.1", Tag(span, SpanAttributes.ServerAddress));
            Assert.Equal(gateway.Ws.Port, span.GetTagItem(SpanAttributes.ServerPort));
            Assert.Equal("127.0.0.1", Tag(span, SpanAttributes.ClientAddress));
            Assert.Equal(route, Tag(span, SpanAttributes.Route));
            Assert.Equal("/echo/{**rest}", Tag(span, SpanAttributes.RouteTemplate));
            Assert.Equal(TelemetryConfig.Cluster, Tag(span, SpanAttributes.Cluster));
            Assert.Equal("backend", Tag(span, SpanAttributes.Destination));
            Assert.Equal(101, span.GetTagItem(SpanAttributes.StatusCode));
            Assert.Equal("chat.v2", Tag(span, SpanAttributes.Subprotocol));
            Assert.Null(span.GetTagItem(SpanAttributes.ErrorType));
            Assert.Equal(default, span.ParentSpanId);
        }
        Assert.Equal(Handshakes, spans.Stopped.Select(s => s.TraceId).Distinct().Count());
    }

    [Fact]
    public async Task An_http2_handshake_is_a_connect_span_ended_by_its_200()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        await using var backend = await Backend.StartAsync("span-h2");
        using var certificates = new TestCertificates();
        var (pem, key, _) = certificates.IssueServer("server", "localhost");
        var route = TelemetryConfig.NewRoute("spans-h2");
        using var spans = new SpanRecorder(route);
        var config = TelemetryConfig.Build(route, "/echo", backend.Address, TelemetryConfig.Otlp(receiver, metrics: false), TelemetryConfig.Tracing());
        config["Gateway"]!["Tls"]!["Certificates"] = new JsonArray(new JsonObject { ["Path"] = pem, ["KeyPath"] = key });
        await using var gateway = await GatewayServer.StartAsync(config);

        using var socket = await WebSocketClient.ConnectAsync(gateway, Transport.WssHttp2, "/echo", certificates);
        var span = await OneSpanAsync(spans);
        await WebSocketClient.SendTextAsync(socket, "over h2");
        await WebSocketClient.ReceiveAsync(socket);
        Assert.Equal(WebSocketCloseStatus.NormalClosure, await WebSocketClient.CloseAsync(socket));

        Assert.Single(spans.Started);
        Assert.Equal("CONNECT", Tag(span, SpanAttributes.RequestMethod));
        Assert.Equal("https", Tag(span, SpanAttributes.UrlScheme));
        Assert.Equal("2", Tag(span, SpanAttributes.ProtocolVersion));
        Assert.Equal(200, span.GetTagItem(SpanAttributes.StatusCode));
        Assert.Equal(ActivityStatusCode.Unset, span.Status);
        Assert.Null(span.GetTagItem(SpanAttributes.Subprotocol));
    }

    [Fact]
    public async Task A_refused_handshake_is_one_span_with_the_refusal_reason_and_status_error()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        await using var backend = new RawBackend();
        var route = TelemetryConfig.NewRoute("refused");
        using var spans = new SpanRecorder(route);
        var config = TelemetryConfig.Build(route, "/ws", backend.Address, TelemetryConfig.Otlp(receiver, metrics: false), TelemetryConfig.Tracing());
        config["Gateway"]!["WebSocketPolicies"] = new JsonObject
        {
            ["strict"] = new JsonObject { ["Handshake"] = new JsonObject { ["AllowedOrigins"] = new JsonArray("https://chat.example.com") } },
        };
        config["ReverseProxy"]!["Routes"]![route]!["Metadata"] = new JsonObject { ["WebSocketPolicy"] = "strict" };
        await using var gateway = await GatewayServer.StartAsync(config);

        var response = await RawConnection.SendAsync(gateway.Ws, RawRequest.Handshake("/ws", edits: ["Origin: https://evil.example.net"]));

        Assert.Equal(403, response.Status);
        var span = await OneSpanAsync(spans);
        Assert.Single(spans.Started);
        Assert.Equal(0, backend.Handshakes);
        Assert.Equal(ActivityStatusCode.Error, span.Status);
        Assert.Equal("origin", span.StatusDescription);
        Assert.Equal("origin", Tag(span, SpanAttributes.RefusalReason));
        Assert.Equal("origin", Tag(span, SpanAttributes.ErrorType));
        Assert.Equal(403, span.GetTagItem(SpanAttributes.StatusCode));
        Assert.Equal(route, Tag(span, SpanAttributes.Route));
        Assert.Null(span.GetTagItem(SpanAttributes.Destination));

        // And the same handshake with an allowed Origin is an ordinary, successful span.
        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/ws", "Origin: https://chat.example.com");
        await Retry.Eventually(() => Assert.Equal(2, spans.Stopped.Length), Within);
        Assert.Equal(ActivityStatusCode.Unset, spans.Stopped.Last().Status);
    }

    [Fact]
    public async Task A_backend_that_refuses_the_upgrade_makes_an_error_span_with_its_status()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        await using var backend = await Backend.StartAsync("span-404");
        var route = TelemetryConfig.NewRoute("failed");
        using var spans = new SpanRecorder(route);
        // The chat backend has no WebSocket endpoint at /nowhere: it answers the handshake with an error status.
        await using var gateway = await GatewayServer.StartAsync(
            TelemetryConfig.Build(route, "/nowhere", backend.Address, TelemetryConfig.Otlp(receiver, metrics: false), TelemetryConfig.Tracing()));

        var response = await RawConnection.SendAsync(gateway.Ws, RawRequest.Handshake("/nowhere"));

        Assert.NotEqual(101, response.Status);
        var span = await OneSpanAsync(spans);
        Assert.Equal(ActivityStatusCode.Error, span.Status);
        Assert.Equal(response.Status, span.GetTagItem(SpanAttributes.StatusCode));
        Assert.Equal(response.Status.ToString(System.Globalization.CultureInfo.InvariantCulture), Tag(span, SpanAttributes.ErrorType));
        Assert.Equal("backend", Tag(span, SpanAttributes.Destination));
        Assert.Null(span.GetTagItem(SpanAttributes.RefusalReason));
    }

    [Fact]
    public async Task The_spans_reach_the_collector_over_otlp_http()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        await using var backend = await Backend.StartAsync("span-export");
        var route = TelemetryConfig.NewRoute("exported");
        using var spans = new SpanRecorder(route);
        var gateway = await GatewayServer.StartAsync(
            TelemetryConfig.Build(route, "/echo", backend.Address, TelemetryConfig.Otlp(receiver, metrics: false), TelemetryConfig.Tracing()));
        string instance;
        try
        {
            instance = gateway.Services.GetRequiredService<TelemetryResource>().InstanceId;
            using var socket = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/echo");
            Assert.Equal(WebSocketCloseStatus.NormalClosure, await WebSocketClient.CloseAsync(socket));
            await RawConnection.SendAsync(gateway.Ws, RawRequest.Handshake("/echo", edits: ["Sec-WebSocket-Version: 8"]));
            await Retry.Eventually(() => Assert.Equal(2, spans.Stopped.Length), Within);
        }
        finally
        {
            // Shutting down flushes the batch of spans (the schedule would send it within 5 s anyway).
            await gateway.DisposeAsync();
        }

        var traces = receiver.At("/v1/traces").ToArray();
        Assert.NotEmpty(traces);
        Assert.All(traces, t => Assert.Equal("application/x-protobuf", t.ContentType));
        Assert.Equal(2, traces.Sum(t => t.Count(HandshakeTracing.SpanName)));
        Assert.Contains(traces, t => t.Contains(route) && t.Contains(SpanAttributes.Route) && t.Contains(instance) && t.Contains(TelemetryResource.ServiceName));
        foreach (var span in spans.Stopped)
        {
            var traceId = new byte[16];
            span.TraceId.CopyTo(traceId);
            Assert.Contains(traces, t => t.Contains(traceId));
        }
        Assert.Empty(receiver.At("/v1/metrics"));
    }

    [Fact]
    public async Task With_tracing_off_there_is_no_span_and_nothing_reaches_the_collector()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        await using var backend = await Backend.StartAsync("untraced");
        var route = TelemetryConfig.NewRoute("untraced");
        // A listener on the source, as a tracing gateway next door would have: this gateway still makes no span.
        using var spans = new SpanRecorder(route);
        var gateway = await GatewayServer.StartAsync(
            TelemetryConfig.Build(route, "/echo", backend.Address, TelemetryConfig.Otlp(receiver, metrics: false), TelemetryConfig.Tracing(enabled: false)));
        try
        {
            Assert.False(gateway.Services.GetRequiredService<HandshakeTracing>().Enabled);
            using var socket = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/echo");
            for (var m = 0; m < 5; m++)
            {
                await WebSocketClient.SendTextAsync(socket, "untraced");
                await WebSocketClient.ReceiveAsync(socket);
            }
            Assert.Equal(WebSocketCloseStatus.NormalClosure, await WebSocketClient.CloseAsync(socket));
            await RawConnection.SendAsync(gateway.Ws, RawRequest.Handshake("/echo", edits: ["Sec-WebSocket-Version: 8"]));
            // A span would have started at the gate, before the backend saw the handshake.
            Assert.Equal(0, spans.StartedAnyRoute);
        }
        finally
        {
            await gateway.DisposeAsync();
        }
        // Whatever a provider had queued would have been flushed by the shutdown.
        Assert.Empty(receiver.Received);
    }

    [Fact]
    public async Task The_warmup_makes_no_spans()
    {
        await using var receiver = await OtlpReceiver.StartAsync();
        await using var backend = new RawBackend();
        using var spans = new SpanRecorder(route: "(none)");
        var config = TelemetryConfig.Build(TelemetryConfig.NewRoute("warm"), "/ws", backend.Address, TelemetryConfig.Otlp(receiver, metrics: false), TelemetryConfig.Tracing());
        config["Gateway"]!["Warmup"] = new JsonObject { ["Enabled"] = true, ["MaxDuration"] = "00:00:05" };
        await using var gateway = await GatewayServer.StartAsync(config);

        var warmup = gateway.Services.GetRequiredService<Gateway.Warmup.WarmupService>();
        await warmup.Completion.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.NotNull(warmup.Report);
        Assert.True(warmup.Report!.Sessions > 0);
        Assert.Equal(0, spans.StartedAnyRoute);
    }

    private static string? Tag(Activity span, string name) => span.GetTagItem(name) as string;

    /// <summary>Waits (bounded) until the route's one span has ended.</summary>
    private static Task<Activity> OneSpanAsync(SpanRecorder spans) => Retry.Eventually(() => Task.FromResult(Assert.Single(spans.Stopped)), Within);
}
