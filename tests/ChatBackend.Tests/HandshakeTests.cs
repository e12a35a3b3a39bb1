using System.Net.WebSockets;

namespace ChatBackend.Tests;

public sealed class HandshakeTests(BackendFixture fixture) : IClassFixture<BackendFixture>
{
    [Theory]
    [InlineData("chat/lobby", new[] { "x", "chat.v1" }, "chat.v1")]
    [InlineData("chat/lobby", new[] { "chat.v1", "chat.v2" }, "chat.v1")] // the client's order wins
    [InlineData("echo", new[] { "chat.v2", "chat.v1" }, "chat.v2")]
    [InlineData("echo", new[] { "x" }, null)]
    public async Task First_supported_offered_subprotocol_is_selected(string path, string[] offered, string? expected)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var client = await fixture.Backend.ConnectAsync(path, timeout.Token, options =>
        {
            foreach (var protocol in offered)
            {
                options.AddSubProtocol(protocol);
            }
        });

        Assert.Equal(expected, client.SubProtocol);
        await client.CloseAsync(WebSocketCloseStatus.NormalClosure, null, timeout.Token);
    }

    [Fact]
    public async Task Configured_subprotocols_replace_the_defaults()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var backend = await RunningBackend.StartAsync("--Subprotocols:0", "custom.v9");
        using var custom = await backend.ConnectAsync("echo", timeout.Token, options =>
        {
            options.AddSubProtocol("chat.v2");
            options.AddSubProtocol("custom.v9");
        });

        Assert.Equal("custom.v9", custom.SubProtocol);
        await custom.CloseAsync(WebSocketCloseStatus.NormalClosure, null, timeout.Token);
    }

    [Fact]
    public async Task Permessage_deflate_is_negotiated_when_offered_and_messages_still_round_trip()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var client = await fixture.Backend.ConnectAsync("echo", timeout.Token, options =>
        {
            options.DangerousDeflateOptions = new WebSocketDeflateOptions();
            options.CollectHttpResponseDetails = true;
        });

        var extensions = string.Join(",", client.HttpResponseHeaders!["Sec-WebSocket-Extensions"]);
        Assert.Contains("permessage-deflate", extensions, StringComparison.Ordinal);

        var text = string.Concat(Enumerable.Repeat("compressible chat line ", 20_000));
        await client.SendTextAsync(text, timeout.Token);
        Assert.Equal(text, (await client.ReceiveWholeAsync(timeout.Token)).Text);
        await client.CloseAsync(WebSocketCloseStatus.NormalClosure, null, timeout.Token);
    }

    [Fact]
    public async Task No_extension_is_negotiated_when_the_client_does_not_offer_one()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var client = await fixture.Backend.ConnectAsync("echo", timeout.Token, options => options.CollectHttpResponseDetails = true);

        Assert.False(client.HttpResponseHeaders!.ContainsKey("Sec-WebSocket-Extensions"));
        await client.CloseAsync(WebSocketCloseStatus.NormalClosure, null, timeout.Token);
    }
}
