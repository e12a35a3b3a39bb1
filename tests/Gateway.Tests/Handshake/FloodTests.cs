using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Text.Json.Nodes;
using Gateway.Handshake;
using Gateway.Metrics;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Gateway.Tests.Handshake;

/// <summary>A flood of malformed handshakes is refused cheaply, counted, logged sparingly, and leaves the gateway serving.</summary>
public sealed class FloodTests
{
    private const int Handshakes = 10_000;
    private const int Concurrency = 50;
    private const int PerConnection = 20;

    private static readonly (string Request, int Status, string Reason)[] Malformed =
    [
        (RawRequest.Handshake("/flood/a", edits: ["Sec-WebSocket-Key: abc"]), 400, "key"),
        (RawRequest.Handshake("/flood/b", edits: ["Sec-WebSocket-Version: 8"]), 426, "version"),
        (RawRequest.Handshake("/flood/c", edits: ["-Connection"]), 400, "connection_header"),
        (RawRequest.Handshake("/flood/d", edits: ["Upgrade: h2c"]), 400, "upgrade_header"),
        (RawRequest.Handshake("/flood/e", "DELETE"), 405, "method"),
        (RawRequest.Handshake("/flood/f", edits: ["Origin: https://evil-example.com"]), 403, "origin"),
        (RawRequest.Plain("/flood/g"), 426, "not_websocket"),
    ];

    [Fact]
    public async Task Ten_thousand_malformed_handshakes_leave_the_gateway_serving_valid_clients()
    {
        await using var backend = await ProbeBackend.StartAsync();
        var policies = new JsonObject
        {
            ["flood"] = new JsonObject
            {
                ["Handshake"] = new JsonObject { ["AllowPlainHttp"] = false, ["AllowedOrigins"] = HandshakeGateway.Strings("https://chat.example.com") },
            },
        };
        var config = HandshakeGateway.Config(HandshakeGateway.Proxy(backend, ("flood", "/flood", "flood")), policies);
        config["Logging"]!["LogLevel"]![RefusalReporter.LogCategory] = "Information";
        await using var gateway = await GatewayServer.StartAsync(config);

        var logs = new CapturingLoggerProvider();
        gateway.Services.GetRequiredService<ILoggerFactory>().AddProvider(logs);
        var refused = new ConcurrentDictionary<string, long>();
        using var listener = Listen(gateway, refused);

        var clock = Stopwatch.StartNew();
        var answered = 0;
        await Parallel.ForEachAsync(Enumerable.Range(0, Handshakes / PerConnection), new ParallelOptions { MaxDegreeOfParallelism = Concurrency },
            async (batch, _) =>
            {
                var connection = await RawConnection.OpenAsync(gateway.Ws);
                try
                {
                    for (var i = 0; i < PerConnection; i++)
                    {
                        var (request, status, _) = Malformed[(batch * PerConnection + i) % Malformed.Length];
                        var response = await connection.RoundTripAsync(request);
                        Assert.Equal(status, response.Status);
                        Interlocked.Increment(ref answered);
                        // Kestrel ends the connection after a response with its own Connection header (the 426 that
                        // names websocket in Upgrade): carry on over a new one, as an HTTP client would.
                        if (response.Header("Connection") is { } connectionHeader && !connectionHeader.Contains("keep-alive", StringComparison.OrdinalIgnoreCase))
                        {
                            await connection.DisposeAsync();
                            connection = await RawConnection.OpenAsync(gateway.Ws);
                        }
                    }
                }
                finally
                {
                    await connection.DisposeAsync();
                }
            });
        clock.Stop();

        Assert.Equal(Handshakes, answered);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(45), $"the flood took {clock.Elapsed}");
        Assert.Equal(0, backend.Requests);

        // Counted by reason and route, every one of them.
        Assert.Equal(Handshakes, refused.Values.Sum());
        foreach (var (_, _, reason) in Malformed)
        {
            Assert.True(refused.GetValueOrDefault($"{reason}/flood") > 0, $"no count for {reason}");
        }

        // Logged at most once per reason per second (plus the first line of each reason), not once per request.
        var refusalLines = logs.Lines.Count(l => l.Category == RefusalReporter.LogCategory);
        var bound = Malformed.Length * ((int)Math.Ceiling(clock.Elapsed.TotalSeconds) + 2);
        Assert.InRange(refusalLines, Malformed.Length, bound);

        // Valid clients are served as before.
        using var socket = new System.Net.WebSockets.ClientWebSocket();
        socket.Options.SetRequestHeader("Origin", "https://chat.example.com");
        using var timeout = new CancellationTokenSource(WebSocketClient.Timeout);
        await socket.ConnectAsync(new Uri(gateway.Ws, "flood/echo"), timeout.Token);
        await WebSocketClient.SendTextAsync(socket, "still here");
        Assert.Equal("still here", await WebSocketClient.ReceiveTextAsync(socket));
        await WebSocketClient.CloseAsync(socket);
    }

    private static MeterListener Listen(GatewayServer gateway, ConcurrentDictionary<string, long> counts)
    {
        var meter = gateway.Services.GetRequiredService<GatewayMeter>().Meter;
        var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (ReferenceEquals(instrument.Meter, meter) && instrument.Name == HandshakeMetrics.RefusedName)
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            string? reason = null, route = null;
            foreach (var tag in tags)
            {
                if (tag.Key == "reason")
                {
                    reason = tag.Value as string;
                }
                else if (tag.Key == "route")
                {
                    route = tag.Value as string;
                }
            }
            counts.AddOrUpdate($"{reason}/{route}", value, (_, sum) => sum + value);
        });
        listener.Start();
        return listener;
    }
}
