using System.Net.WebSockets;

namespace ChatBackend.Tests;

public sealed class EchoTests(BackendFixture fixture) : IClassFixture<BackendFixture>
{
    [Theory]
    [InlineData(WebSocketMessageType.Text, 0)]
    [InlineData(WebSocketMessageType.Binary, 0)]
    [InlineData(WebSocketMessageType.Text, 13)]
    [InlineData(WebSocketMessageType.Binary, 13)]
    [InlineData(WebSocketMessageType.Text, 1024 * 1024)]
    [InlineData(WebSocketMessageType.Binary, 1024 * 1024)]
    public async Task Message_is_echoed_whole_with_its_type(WebSocketMessageType type, int size)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var client = await fixture.Backend.ConnectAsync("echo", timeout.Token);
        var payload = MakePayload(size);

        await client.SendAsync(payload, type, endOfMessage: true, timeout.Token);
        var echoed = await client.ReceiveWholeAsync(timeout.Token);

        Assert.Equal(type, echoed.Type);
        Assert.Equal(payload, echoed.Payload);
        await client.CloseAsync(WebSocketCloseStatus.NormalClosure, null, timeout.Token);
    }

    [Theory]
    [InlineData(WebSocketMessageType.Text)]
    [InlineData(WebSocketMessageType.Binary)]
    public async Task Fragmented_message_is_echoed_as_one_message(WebSocketMessageType type)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var client = await fixture.Backend.ConnectAsync("echo", timeout.Token);
        var payload = MakePayload(300_000);

        // Uneven fragments, then an empty final frame, which is legal and must not end the message early.
        var offset = 0;
        foreach (var length in new[] { 1, 4096, 100_000, 150_000 })
        {
            await client.SendAsync(payload.AsMemory(offset, length), type, endOfMessage: false, timeout.Token);
            offset += length;
        }

        await client.SendAsync(payload.AsMemory(offset), type, endOfMessage: false, timeout.Token);
        await client.SendAsync(ReadOnlyMemory<byte>.Empty, type, endOfMessage: true, timeout.Token);
        var echoed = await client.ReceiveWholeAsync(timeout.Token);

        Assert.Equal(type, echoed.Type);
        Assert.Equal(payload, echoed.Payload);
        await client.CloseAsync(WebSocketCloseStatus.NormalClosure, null, timeout.Token);
    }

    [Fact]
    public async Task Several_messages_come_back_in_order()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var client = await fixture.Backend.ConnectAsync("echo", timeout.Token);

        for (var i = 0; i < 50; i++)
        {
            await client.SendTextAsync("m" + i, timeout.Token);
        }

        for (var i = 0; i < 50; i++)
        {
            Assert.Equal("m" + i, (await client.ReceiveWholeAsync(timeout.Token)).Text);
        }

        await client.CloseAsync(WebSocketCloseStatus.NormalClosure, null, timeout.Token);
    }

    [Theory]
    [InlineData(WebSocketCloseStatus.NormalClosure, "bye")]
    [InlineData(WebSocketCloseStatus.EndpointUnavailable, "going")]
    [InlineData((WebSocketCloseStatus)4001, "app specific")]
    public async Task Client_close_is_echoed_with_same_status_and_description(WebSocketCloseStatus status, string description)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var client = await fixture.Backend.ConnectAsync("echo", timeout.Token);

        await client.CloseAsync(status, description, timeout.Token);

        Assert.Equal(WebSocketState.Closed, client.State);
        Assert.Equal(status, client.CloseStatus);
        Assert.Equal(description, client.CloseStatusDescription);
    }

    [Fact]
    // Generous time: 64 MiB cross loopback in a Debug build, on a machine that may be busy.
    public async Task Message_of_exactly_32_MiB_is_echoed()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var client = await fixture.Backend.ConnectAsync("echo", timeout.Token);
        var payload = MakePayload(32 * 1024 * 1024);

        var send = client.SendAsync(payload, WebSocketMessageType.Binary, true, timeout.Token);
        var echoed = await client.ReceiveWholeAsync(timeout.Token);
        await send;

        Assert.Equal(WebSocketMessageType.Binary, echoed.Type);
        Assert.True(payload.AsSpan().SequenceEqual(echoed.Payload));
        await client.CloseAsync(WebSocketCloseStatus.NormalClosure, null, timeout.Token);
    }

    [Fact]
    public async Task Message_over_32_MiB_closes_with_1009()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        using var client = await fixture.Backend.ConnectAsync("echo", timeout.Token);

        var send = client.SendAsync(new byte[(32 * 1024 * 1024) + 1], WebSocketMessageType.Binary, true, timeout.Token);
        var close = await client.ReceiveWholeAsync(timeout.Token);
        await send;

        Assert.Equal(WebSocketMessageType.Close, close.Type);
        Assert.Equal(WebSocketCloseStatus.MessageTooBig, close.CloseStatus);
        await client.AnswerCloseAsync(timeout.Token);
    }

    private static byte[] MakePayload(int size)
    {
        // Printable ASCII so the same bytes are also valid UTF-8 for text messages.
        var payload = new byte[size];
        for (var i = 0; i < size; i++)
        {
            payload[i] = (byte)('!' + (i * 7 % 90));
        }

        return payload;
    }
}
