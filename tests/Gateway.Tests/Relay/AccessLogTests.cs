using Gateway.Tests.Handshake;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Gateway.Tests.Relay;

[Collection(SerialCollection.Name)]
public sealed class AccessLogTests
{
    [Fact]
    public async Task Every_tunnel_ends_with_one_access_log_line_that_says_who_where_how_long_how_much_and_how_it_ended()
    {
        await using var backend = new RawBackend();
        var logs = new CapturingLoggerProvider();
        var config = RelayConfig.Build(backend.Address, RelayConfig.KeepAlive("00:00:30", "00:00:15"));
        config["Logging"]!["LogLevel"]!["Gateway.AccessLog"] = "Information";
        await using var gateway = await GatewayServer.StartAsync(config, services => services.AddSingleton<ILoggerProvider>(logs));

        await using (var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/logged"))
        {
            for (var i = 0; i < 2; i++)
            {
                await client.SendAsync(RawFrames.Encode(RawFrame.Text, "12345"u8));
                Assert.NotNull(await client.ReceiveAsync(TimeSpan.FromSeconds(5)));
            }
            await client.SendAsync(RawFrames.CloseFrame(1000));
            Assert.Equal(RawFrame.Close, (await client.ReceiveAsync(TimeSpan.FromSeconds(5)))!.Opcode);
            await client.Ended.WaitAsync(TimeSpan.FromSeconds(5));
        }

        var line = await Retry.Eventually(() => Task.FromResult(Assert.Single(logs.Records, r => r.Category == "Gateway.AccessLog")), TimeSpan.FromSeconds(5));
        Assert.Equal(LogLevel.Information, line.Level);
        Assert.Matches(@"^\d{4}-\d\d-\d\dT\S+ 127\.0\.0\.1 raw raw d1 HTTP/1\.1 - \d+\.\d{3}s client->backend 2 msgs 10 B, backend->client 2 msgs 10 B, 1000 client$", line.Message);
        // Nothing else of the relay's is logged for a tunnel that ended normally.
        Assert.DoesNotContain(logs.Records, r => r.Category.StartsWith("Gateway.Relay", StringComparison.Ordinal) && r.Level >= LogLevel.Information);
    }
}
