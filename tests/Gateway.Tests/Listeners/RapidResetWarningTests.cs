using System.Text.Json.Nodes;
using Gateway.Tests.Handshake;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Gateway.Tests.Listeners;

/// <summary>At load, one warning (event 153) when Kestrel:Limits:MaxConcurrentConnections meets a TLS listener that offers h2.</summary>
public sealed class RapidResetWarningTests
{
    [Fact]
    public async Task MaxConcurrentConnections_with_an_h2_listener_logs_one_warning_naming_the_keys()
    {
        var lines = await StartupWarningsAsync(config => config["Kestrel"] = new JsonObject { ["Limits"] = new JsonObject { ["MaxConcurrentConnections"] = 1000 } });

        var line = Assert.Single(lines);
        Assert.Equal("Gateway.Listeners", line.Category);
        Assert.Contains("Kestrel:Limits:MaxConcurrentConnections is set while TLS listener(s) Gateway:Listeners:wss offer HTTP/2", line.Message);
        Assert.Contains("Kestrel:Limits:Http2:MaxStreamsPerConnection", line.Message);
        Assert.DoesNotContain('\n', line.Message);
    }

    [Fact]
    public async Task Without_MaxConcurrentConnections_or_without_h2_there_is_no_warning()
    {
        Assert.Empty(await StartupWarningsAsync(_ => { }));
        Assert.Empty(await StartupWarningsAsync(config =>
        {
            config["Kestrel"] = new JsonObject { ["Limits"] = new JsonObject { ["MaxConcurrentConnections"] = 1000 } };
            config["Gateway"]!["Listeners"]!["wss"]!["Protocols"] = "Http1";
        }));
    }

    private static async Task<List<(string Category, string Message)>> StartupWarningsAsync(Action<JsonObject> configure)
    {
        using var certificates = new TestCertificates();
        await using var backend = await ProbeBackend.StartAsync();
        var (certificate, key, _) = certificates.IssueServer("server", "localhost");
        var config = HandshakeGateway.Config(HandshakeGateway.Proxy(backend, ("open", "/open", null)), new JsonObject(),
            [new JsonObject { ["Path"] = certificate, ["KeyPath"] = key }]);
        configure(config);
        var logs = new CapturingLoggerProvider();
        await using (var gateway = await GatewayServer.StartAsync(config, services => services.AddSingleton<ILoggerProvider>(logs)))
        {
        }
        return logs.Records.Where(r => r.Id.Id == 153).Select(r =>
        {
            Assert.Equal(LogLevel.Warning, r.Level);
            return (r.Category, r.Message);
        }).ToList();
    }
}
