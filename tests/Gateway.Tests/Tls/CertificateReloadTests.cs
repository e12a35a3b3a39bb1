using System.Text.Json.Nodes;
using Gateway.Configuration;
using Gateway.Tests.Handshake;
using Gateway.Tests.Infrastructure;
using Gateway.Tls;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace Gateway.Tests.Tls;

/// <summary>
/// Certificate renewal on a running gateway, with real TLS handshakes. Serial: the reload counter and the expiry gauge
/// are read from /metrics (see <see cref="SerialCollection"/>).
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class CertificateReloadTests : IDisposable
{
    private const string Reloads = "gateway_tls_certificate_reloads_total";
    private const string Expiry = "gateway_tls_certificate_expiry_timestamp_seconds";
    private static readonly TimeSpan Soon = TimeSpan.FromSeconds(5);

    private readonly TestCertificates _certificates = new();
    private readonly CapturingLoggerProvider _logs = new();

    public void Dispose() => _certificates.Dispose();

    [Fact]
    public async Task A_replaced_certificate_is_served_to_new_handshakes_within_seconds_while_an_open_tunnel_keeps_relaying()
    {
        var (pem, key, first) = _certificates.IssueServer("server", "localhost");
        var (renewedPem, renewedKey, renewed) = _certificates.IssueServer("renewed", "localhost");
        await using var backend = await Backend.StartAsync("b1");
        await using var gateway = await GatewayServer.StartAsync(Config(backend, pem, key), Capture);
        Assert.Equal(first.Thumbprint, await TlsProbe.ThumbprintAsync(gateway));
        using var tunnel = await WebSocketClient.ConnectAsync(gateway, Transport.WssHttp11, "/echo", _certificates);
        await WebSocketClient.SendTextAsync(tunnel, "before");
        Assert.Equal("before", await WebSocketClient.ReceiveTextAsync(tunnel));

        // As `cp` or an ACME hook does it: the files are rewritten in place, the key first.
        File.Copy(renewedKey, key, overwrite: true);
        File.Copy(renewedPem, pem, overwrite: true);

        await Retry.Eventually(async () => Assert.Equal(renewed.Thumbprint, await TlsProbe.ThumbprintAsync(gateway)), Soon);
        // The tunnel opened under the old certificate is untouched: same connection, both directions still work.
        await WebSocketClient.SendTextAsync(tunnel, "after");
        Assert.Equal("after", await WebSocketClient.ReceiveTextAsync(tunnel));
        Assert.Equal(renewed.Thumbprint, await TlsProbe.ThumbprintAsync(gateway));
        var scrape = await MetricsScrape.FetchAsync(gateway);
        Assert.True(scrape.Value(Reloads, ("result", "success")) >= 1);
        Assert.Equal(0, scrape.Value(Reloads, ("result", "failure")));
        var reloaded = Assert.Single(Lines(203), line => line.Contains(renewed.Thumbprint[..12], StringComparison.Ordinal));
        Assert.Contains($"was SHA-1 {first.Thumbprint[..12]}", reloaded);
        Assert.Equal("after", await EchoAsync(gateway, "after"));
    }

    [Fact]
    public async Task A_kubernetes_secret_swap_is_seen_by_the_directory_watcher_alone()
    {
        var (firstPem, firstKey, first) = _certificates.IssueServer("first", "localhost");
        var (nextPem, nextKey, next) = _certificates.IssueServer("next", "localhost");
        var mount = new SecretMount(_certificates.Directory);
        mount.Publish(firstPem, firstKey);
        await using var backend = await Backend.StartAsync("b1");
        // The periodic check is off: only the notification for the ..data rename can bring the change in.
        await using var gateway = await GatewayServer.StartAsync(Config(backend, mount.CertificatePath, mount.KeyPath, checkInterval: "00:00:00"), Capture);
        Assert.Equal(first.Thumbprint, await TlsProbe.ThumbprintAsync(gateway));

        mount.Publish(nextPem, nextKey);

        await Retry.Eventually(async () => Assert.Equal(next.Thumbprint, await TlsProbe.ThumbprintAsync(gateway)), Soon);
        Assert.Empty(Lines(204));
    }

    [Fact]
    public async Task In_virtual_time_a_secret_swap_is_found_by_the_periodic_check_and_the_expiry_gauge_follows()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var (firstPem, firstKey, first) = _certificates.IssueServer("first", DateTimeOffset.UtcNow.AddDays(25), "chat.example.test");
        var (nextPem, nextKey, next) = _certificates.IssueServer("next", DateTimeOffset.UtcNow.AddDays(10), "chat.example.test");
        var mount = new SecretMount(_certificates.Directory);
        mount.Publish(firstPem, firstKey);
        await using var backend = await Backend.StartAsync("b1");
        await using var gateway = await GatewayServer.StartAsync(Config(backend, mount.CertificatePath, mount.KeyPath, hosts: ["chat.example.test"]),
            services => Capture(services.AddSingleton<TimeProvider>(time)));
        var labels = new[] { ("certificate", "0"), ("host", "chat.example.test") };
        Assert.Equal(UnixSeconds(first.NotAfter), (await MetricsScrape.FetchAsync(gateway)).Value(Expiry, labels));
        Assert.Empty(Lines(201)); // 25 days left: no warning

        mount.Publish(nextPem, nextKey);
        // Timers run only when the test moves the clock: one check period, then the quiet period, then it is done.
        time.Advance(TimeSpan.FromSeconds(5));
        time.Advance(CertificateWatcher.SettleDelay);

        Assert.Equal(next.Thumbprint, await TlsProbe.ThumbprintAsync(gateway, "chat.example.test"));
        var scrape = await MetricsScrape.FetchAsync(gateway);
        Assert.Equal(UnixSeconds(next.NotAfter), scrape.Value(Expiry, labels));
        Assert.Equal(1, scrape.Value(Reloads, ("result", "success")));
        // The startup warning for a certificate that expires within 14 days is repeated on reload.
        Assert.Contains("Gateway:Tls:Certificates:0", Assert.Single(Lines(201)));
    }

    [Fact]
    public async Task A_bad_new_file_keeps_the_old_certificate_with_one_error_naming_the_file_and_the_next_good_one_applies()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var (pem, key, first) = _certificates.IssueServer("server", "localhost");
        var (otherPem, otherKey, other) = _certificates.IssueServer("other", "localhost");
        await using var backend = await Backend.StartAsync("b1");
        await using var gateway = await GatewayServer.StartAsync(Config(backend, pem, key), services => Capture(services.AddSingleton<TimeProvider>(time)));

        // A certificate file that is not PEM at all.
        await File.WriteAllTextAsync(pem, "-----BEGIN CERTIFICATE-----\nnot base64\n");
        await CheckAsync(time);
        Assert.Equal(first.Thumbprint, await TlsProbe.ThumbprintAsync(gateway));
        Assert.Equal(1, (await MetricsScrape.FetchAsync(gateway)).Value(Reloads, ("result", "failure")));
        var unparsable = Assert.Single(Lines(204));
        Assert.Contains($"Gateway:Tls:Certificates:0:Path: cannot load certificate '{pem}'", unparsable);

        // Half a renewal: a new certificate whose key has not been written yet.
        File.Copy(otherPem, pem, overwrite: true);
        await CheckAsync(time);
        Assert.Equal(first.Thumbprint, await TlsProbe.ThumbprintAsync(gateway));
        Assert.Equal(2, (await MetricsScrape.FetchAsync(gateway)).Value(Reloads, ("result", "failure")));
        var mismatch = Lines(204)[1];
        Assert.Contains($"with key '{key}'", mismatch);
        Assert.Contains("key", mismatch[mismatch.IndexOf($"'{key}':", StringComparison.Ordinal)..], StringComparison.OrdinalIgnoreCase);

        // The key arrives: the pair is good and is served.
        File.Copy(otherKey, key, overwrite: true);
        await CheckAsync(time);
        Assert.Equal(other.Thumbprint, await TlsProbe.ThumbprintAsync(gateway));
        var scrape = await MetricsScrape.FetchAsync(gateway);
        Assert.Equal(1, scrape.Value(Reloads, ("result", "success")));
        Assert.Equal(2, scrape.Value(Reloads, ("result", "failure")));

        // A deleted file fails too, and names the file.
        File.Delete(key);
        await CheckAsync(time);
        Assert.Equal(other.Thumbprint, await TlsProbe.ThumbprintAsync(gateway));
        Assert.Contains($"Gateway:Tls:Certificates:0:KeyPath: key file '{key}' does not exist", Lines(204)[2]);
        Assert.Equal(3, Lines(204).Count);
        Assert.Equal("up", await EchoAsync(gateway, "up"));
    }

    [Fact]
    public async Task Sighup_reloads_the_certificates_at_once_and_the_configuration_file()
    {
        var time = new FakeTimeProvider(DateTimeOffset.UtcNow);
        var (pem, key, first) = _certificates.IssueServer("server", "localhost");
        var (renewedPem, renewedKey, renewed) = _certificates.IssueServer("renewed", "localhost");
        await using var backend = await Backend.StartAsync("b1");
        await using var gateway = await GatewayServer.StartAsync(Config(backend, pem, key, checkInterval: "00:00:00"),
            services => Capture(services.AddSingleton<TimeProvider>(time)));
        File.Copy(renewedKey, key, overwrite: true);
        File.Copy(renewedPem, pem, overwrite: true);
        var configReloads = Lines(100).Count;

        // What the SIGHUP handler runs (the real signal is sent to a gateway process in SighupProcessTests). The
        // clock does not move, so no watcher timer can have done this.
        gateway.Services.GetRequiredService<ReloadSignal>().Raise();

        Assert.Equal(renewed.Thumbprint, await TlsProbe.ThumbprintAsync(gateway));
        Assert.Contains(" on SIGHUP: ", Assert.Single(Lines(203)));
        Assert.Equal(configReloads + 1, Lines(100).Count);
        Assert.Single(Lines(103));

        // A second SIGHUP with nothing new says so and changes nothing.
        gateway.Services.GetRequiredService<ReloadSignal>().Raise();
        Assert.EndsWith("no certificate changed", Lines(203)[1]);
        Assert.Equal(renewed.Thumbprint, await TlsProbe.ThumbprintAsync(gateway));
        Assert.Equal(2, (await MetricsScrape.FetchAsync(gateway)).Value(Reloads, ("result", "success")));
        Assert.NotEqual(first.Thumbprint, renewed.Thumbprint);
    }

    [Fact]
    public async Task A_self_signed_gateway_has_nothing_to_watch_and_reports_its_expiry()
    {
        await using var backend = await Backend.StartAsync("b1");
        await using var gateway = await GatewayServer.StartAsync(GatewayServer.Config(GatewayServer.Proxy([("echo", "/echo", "echo")], [("echo", [backend])])));
        Assert.Null(gateway.Services.GetService<CertificateWatcher>());
        var served = await TlsProbe.CertificateAsync(gateway);
        Assert.Equal(UnixSeconds(served.NotAfter),
            (await MetricsScrape.FetchAsync(gateway)).Value(Expiry, ("certificate", "self-signed"), ("host", "default")));
    }

    /// <summary>One check period and the quiet period of virtual time: any change of the files has been tried after it.</summary>
    private static async Task CheckAsync(FakeTimeProvider time)
    {
        time.Advance(TimeSpan.FromSeconds(5));
        time.Advance(CertificateWatcher.SettleDelay);
        await Task.Yield();
    }

    private void Capture(IServiceCollection services) => services.AddSingleton<ILoggerProvider>(_logs);

    private List<string> Lines(int eventId) => _logs.Lines.Where(l => l.Id.Id == eventId).Select(l => l.Message).ToList();

    private static long UnixSeconds(DateTime notAfter) => new DateTimeOffset(notAfter.ToUniversalTime()).ToUnixTimeSeconds();

    private async Task<string> EchoAsync(GatewayServer gateway, string text)
    {
        using var socket = await WebSocketClient.ConnectAsync(gateway, Transport.WssHttp2, "/echo", _certificates);
        await WebSocketClient.SendTextAsync(socket, text);
        var echoed = await WebSocketClient.ReceiveTextAsync(socket);
        await WebSocketClient.CloseAsync(socket);
        return echoed;
    }

    private static JsonObject Config(Backend backend, string pem, string key, string? checkInterval = null, string[]? hosts = null)
    {
        var certificate = new JsonObject { ["Path"] = pem, ["KeyPath"] = key };
        if (hosts is not null)
        {
            certificate["Hosts"] = new JsonArray(hosts.Select(h => (JsonNode)h).ToArray());
        }
        var config = GatewayServer.Config(GatewayServer.Proxy([("echo", "/echo", "echo")], [("echo", [backend])]), [certificate]);
        config["Logging"]!["LogLevel"]!["Gateway"] = "Information";
        if (checkInterval is not null)
        {
            config["Gateway"]!["Tls"]!["CertificateCheckInterval"] = checkInterval;
        }
        return config;
    }
}
