using System.Diagnostics.Metrics;
using System.Text.Json.Nodes;
using Gateway.Tests.Handshake;
using Gateway.Tests.Infrastructure;
using Gateway.Warmup;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Gateway.Tests.Warmup;

/// <summary>
/// The warm-up is the gateway's own business: the operator's access log and the gateway's series never hear of it,
/// and the framework's meters (Kestrel, hosting) keep reporting the gateway's listeners after it.
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class WarmupTraceTests
{
    private static JsonObject Config(Backend backend)
    {
        var config = GatewayServer.Config(GatewayServer.Proxy([("chat", "/chat", "chat")], [("chat", [backend])]));
        config["Gateway"]!["Warmup"] = new JsonObject { ["Enabled"] = true, ["MaxDuration"] = "00:00:03" };
        config["Logging"]!["LogLevel"]!["Gateway.AccessLog"] = "Information";
        return config;
    }

    [Fact]
    public async Task Kestrel_and_http_server_series_are_in_every_scrape_after_the_warm_up()
    {
        await using var backend = await Backend.StartAsync("b1");
        await using var gateway = await GatewayServer.StartAsync(Config(backend));
        var warmup = gateway.Services.GetRequiredService<WarmupService>();
        await warmup.Completion.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.NotNull(warmup.Report);

        for (var scrapeNumber = 1; scrapeNumber <= 3; scrapeNumber++)
        {
            var scrape = await MetricsScrape.FetchAsync(gateway);
            var kestrel = Lines(scrape.Text, "kestrel_");
            var httpServer = Lines(scrape.Text, "http_server_");
            Assert.True(kestrel > 0, $"scrape {scrapeNumber}: no kestrel_* series");
            Assert.True(httpServer > 0, $"scrape {scrapeNumber}: no http_server_* series");
            // The warm-up's connections to the public listeners were the gateway's (at least the HTTP/1.1 two thirds of
            // the sessions; HTTP/2 ones share connections) and stay counted after its private backend is gone.
            Assert.True(scrape.Value("kestrel_connection_duration_seconds_count") >= warmup.Report!.Sessions * 2 / 3,
                $"scrape {scrapeNumber}: kestrel counted {scrape.Value("kestrel_connection_duration_seconds_count")} connections for {warmup.Report.Sessions} sessions");
            await Task.Delay(TimeSpan.FromSeconds(1));
        }
    }

    [Fact]
    public async Task The_warm_up_writes_no_access_log_line_and_records_nothing_in_the_gateways_instruments()
    {
        await using var backend = await Backend.StartAsync("b1");
        var logs = new CapturingLoggerProvider();
        await using var gateway = await GatewayServer.StartAsync(Config(backend), services => services.AddSingleton<ILoggerProvider>(logs));
        // Whatever reaches the gateway's meter counts, whether or not an exporter shows it: listen at the source.
        var factory = gateway.Services.GetRequiredService<IMeterFactory>();
        long measurements = 0;
        var instruments = new HashSet<string>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                // This gateway's meter only: gateways of tests running meanwhile have meters of the same name.
                if (ReferenceEquals(instrument.Meter.Scope, factory) && instrument.Meter.Name == "Gateway")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, tags, state) =>
        {
            Interlocked.Increment(ref measurements);
            lock (instruments)
            {
                instruments.Add(instrument.Name);
            }
        });
        listener.SetMeasurementEventCallback<double>((instrument, value, tags, state) =>
        {
            Interlocked.Increment(ref measurements);
            lock (instruments)
            {
                instruments.Add(instrument.Name);
            }
        });
        listener.Start();

        var warmup = gateway.Services.GetRequiredService<WarmupService>();
        await warmup.Completion.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.True(warmup.Report!.Sessions >= 64, $"{warmup.Report.Sessions} sessions");
        var scrape = await MetricsScrape.FetchAsync(gateway);

        Assert.DoesNotContain(logs.Records, r => r.Category == "Gateway.AccessLog");
        Assert.True(Interlocked.Read(ref measurements) == 0, $"the warm-up recorded {measurements} measurements in {string.Join(", ", instruments)}");
        Assert.Equal(0, scrape.Value("gateway_websocket_connections_opened_total"));
        Assert.Equal(0, scrape.Value("gateway_websocket_connections_closed_total"));
        Assert.Equal(0, scrape.Value("gateway_websocket_handshake_duration_seconds_count"));
        Assert.Equal(0, scrape.Value("gateway_relay_messages_total"));
        Assert.Equal(0, scrape.Value("gateway_handshake_refused_total"));

        // A real tunnel afterwards is logged and counted: the silence is the warm-up's alone.
        using (var client = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/chat/lobby", cookies: new System.Net.CookieContainer()))
        {
            Assert.Equal("b1", await WebSocketClient.ReceiveWelcomeBackendAsync(client));
            await WebSocketClient.CloseAsync(client);
        }
        await Retry.Eventually(() => Task.FromResult(Assert.Single(logs.Records, r => r.Category == "Gateway.AccessLog")), TimeSpan.FromSeconds(5));
        var after = await Retry.Eventually(async () =>
        {
            var s = await MetricsScrape.FetchAsync(gateway);
            Assert.Equal(1, s.Value("gateway_websocket_connections_closed_total"));
            return s;
        }, TimeSpan.FromSeconds(10));
        Assert.Equal(1, after.Value("gateway_websocket_connections_opened_total", ("route", "chat")));
        Assert.True(Interlocked.Read(ref measurements) > 0);
    }

    private static int Lines(string text, string prefix) =>
        text.Split('\n').Count(line => line.StartsWith(prefix, StringComparison.Ordinal));
}
