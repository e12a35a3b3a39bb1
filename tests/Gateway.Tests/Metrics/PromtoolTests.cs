using System.Net;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Metrics;

/// <summary>
/// Prometheus's own linter on the gateway's /metrics and on the examples the in-repo validator accepts, so the two
/// agree. Skipped (visibly) where promtool is not installed, unless GATEWAY_TESTS_REQUIRE_PROMTOOL=1.
/// Serial because it reads counters from /metrics (see <see cref="SerialCollection"/>).
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class PromtoolTests
{
    [PromtoolFact]
    public async Task A_scrape_after_relaying_and_refusing_passes_promtool_check_metrics()
    {
        var promtool = Promtool.Require();
        await using var backend = await Backend.StartAsync("b1");
        await using var gateway = await GatewayServer.StartAsync(GatewayServer.Config(
            GatewayServer.Proxy([("chat", "/chat", "chat")], [("chat", [backend])])));

        // One tunnel opened and closed (handshake and lifetime histograms, counters), one handshake refused.
        using (var socket = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/chat/lobby", cookies: new CookieContainer()))
        {
            Assert.Equal("b1", await WebSocketClient.ReceiveWelcomeBackendAsync(socket));
            await WebSocketClient.CloseAsync(socket);
        }
        await Assert.ThrowsAsync<InvalidOperationException>(() =>
            RawWebSocketClient.ConnectAsync(gateway.Ws, "/chat/lobby", "Origin: https://evil.example"));
        var scrape = await Retry.Eventually(async () =>
        {
            var s = await MetricsScrape.FetchAsync(gateway);
            Assert.True(s.Value("gateway_websocket_connection_duration_seconds_count", ("route", "chat")) >= 1);
            return s;
        }, TimeSpan.FromSeconds(10));
        Assert.True(scrape.Value("gateway_handshake_refused_total", ("reason", "origin")) >= 1);

        ExpositionFormat.AssertValid(scrape.Text);
        var (exitCode, output) = await Promtool.CheckMetricsAsync(promtool, scrape.Text);
        Assert.True(exitCode == 0, $"promtool check metrics exited {exitCode}:\n{output}");
    }

    [PromtoolFact]
    public async Task Promtool_accepts_the_validators_good_examples_and_rejects_a_bad_one()
    {
        var promtool = Promtool.Require();
        foreach (var row in ExpositionExamples.Good)
        {
            var (name, text) = ((string)row[0], (string)row[1]);
            var (exitCode, output) = await Promtool.CheckMetricsAsync(promtool, text);
            Assert.True(exitCode == 0, $"promtool rejects the good example '{name}' (exit {exitCode}):\n{output}");
        }

        // The harness sees promtool's verdict: an escape the format does not have fails.
        var bad = await Promtool.CheckMetricsAsync(promtool, ExpositionExamples.Lines("# HELP a x", "# TYPE a gauge", """a{x="\q"} 1"""));
        Assert.NotEqual(0, bad.ExitCode);
        Assert.Contains("escape", bad.Output);
    }
}
