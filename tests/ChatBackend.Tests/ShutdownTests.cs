using System.Net.WebSockets;

namespace ChatBackend.Tests;

public sealed class ShutdownTests
{
    [Fact]
    public async Task Stopping_closes_open_sockets_with_1001()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var backend = await RunningBackend.StartAsync();
        using var echo = await backend.ConnectAsync("echo", timeout.Token);
        using var chat = await backend.ConnectAsync("chat/lobby", timeout.Token);
        await chat.ReceiveWholeAsync(timeout.Token); // welcome

        var stopping = backend.App.StopAsync(timeout.Token);

        foreach (var client in new[] { echo, chat })
        {
            var close = await client.ReceiveWholeAsync(timeout.Token);
            Assert.Equal(WebSocketMessageType.Close, close.Type);
            Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, close.CloseStatus);
            Assert.Equal("backend shutting down", close.CloseDescription);
            await client.AnswerCloseAsync(timeout.Token);
            Assert.Equal(WebSocketState.Closed, client.State);
        }

        await stopping;
    }
}
