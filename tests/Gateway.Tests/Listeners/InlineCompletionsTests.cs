using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Gateway.Tests.Infrastructure;
using Gateway.Tests.Relay;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Console;
using Microsoft.Extensions.Options;

namespace Gateway.Tests.Listeners;

public sealed partial class InlineCompletionsTests
{
    /// <summary>
    /// In a real process: the runtime reads the variable once, when the first socket operation starts its event loop,
    /// and in inline mode it runs one socket event thread per core instead of one. Setting the variable when the
    /// listeners were configured passed the in-process test below and did nothing with source addresses configured.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task The_gateway_process_runs_its_socket_completions_inline_unless_turned_off(bool inline)
    {
        if (Environment.ProcessorCount < 2)
        {
            return; // one core: one event thread either way, nothing to tell apart
        }
        await using var backend = new RawBackend();
        var directory = Directory.CreateTempSubdirectory("gateway-inline-").FullName;
        try
        {
            var config = RelayConfig.Build(backend.Address, RelayConfig.KeepAlive("00:00:00", "00:00:01"));
            config["Logging"]!["LogLevel"]!["Gateway"] = "Information";
            config["Gateway"]!["Warmup"] = new JsonObject { ["Enabled"] = false };
            config["Gateway"]!["DataProtection"] = new JsonObject { ["KeyDirectory"] = Path.Combine(directory, "keys") };
            config["Gateway"]!["InlineCompletions"] = inline;
            // Checking source addresses at load starts the sockets stack: with them, setting the variable when the
            // listeners were configured came too late.
            config["Gateway"]!["Upstream"] = new JsonObject { ["SourceAddresses"] = new JsonArray("127.0.0.1") };
            var path = Path.Combine(directory, "gateway.json");
            await File.WriteAllTextAsync(path, config.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));

            await using var process = GatewayProcess.Start(new Dictionary<string, string>(), "--config", path);
            await process.WaitForLineAsync(AdminBound(), TimeSpan.FromSeconds(60));
            var eventThreads = Directory.GetDirectories($"/proc/{process.Id}/task")
                .Count(task => File.ReadAllText(Path.Combine(task, "comm")).StartsWith(".NET Sockets", StringComparison.Ordinal));

            if (inline)
            {
                Assert.Equal(Environment.ProcessorCount, eventThreads);
            }
            else
            {
                Assert.Equal(1, eventThreads);
            }
            process.Terminate();
            Assert.Equal(0, await process.WaitForExitAsync(TimeSpan.FromSeconds(30)));
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [GeneratedRegex(@"Listener admin bound to 127\.0\.0\.1:\d+ ")]
    private static partial Regex AdminBound();

    [Fact]
    public async Task By_default_io_continuations_run_inline_and_logging_never_waits()
    {
        await using var backend = new RawBackend();
        await using var gateway = await GatewayServer.StartAsync(RelayConfig.Build(backend.Address, RelayConfig.KeepAlive("00:00:00", "00:00:01")));

        Assert.True(gateway.Services.GetRequiredService<IOptions<SocketTransportOptions>>().Value.UnsafePreferInlineScheduling);
        // Read by System.Net.Sockets when a process's first socket starts: set for the gateway's own process.
        Assert.Equal("1", Environment.GetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS"));
        Assert.Equal(ConsoleLoggerQueueFullMode.DropWrite, gateway.Services.GetRequiredService<IOptions<ConsoleLoggerOptions>>().Value.QueueFullMode);
    }

    [Fact]
    public async Task Inline_completions_can_be_turned_off()
    {
        await using var backend = new RawBackend();
        var config = RelayConfig.Build(backend.Address, RelayConfig.KeepAlive("00:00:00", "00:00:01"));
        config["Gateway"]!["InlineCompletions"] = false;
        await using var gateway = await GatewayServer.StartAsync(config);

        Assert.False(gateway.Services.GetRequiredService<IOptions<SocketTransportOptions>>().Value.UnsafePreferInlineScheduling);
    }
}
