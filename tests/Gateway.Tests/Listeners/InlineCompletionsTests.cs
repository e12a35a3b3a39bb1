using Gateway.Tests.Infrastructure;
using Gateway.Tests.Relay;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Console;
using Microsoft.Extensions.Options;

namespace Gateway.Tests.Listeners;

public sealed class InlineCompletionsTests
{
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
