using System.Net.WebSockets;
using System.Text;
using System.Text.Json;

namespace ChatBackend.Tests;

public sealed class ChatRoomTests(BackendFixture fixture) : IClassFixture<BackendFixture>
{
    private static string UniqueRoom() => "room-" + Guid.NewGuid().ToString("N");

    [Fact]
    public async Task Welcome_names_backend_room_and_member_count()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var room = UniqueRoom();

        using var first = await fixture.Backend.ConnectAsync("chat/" + room, timeout.Token);
        var firstWelcome = await first.ReceiveWholeAsync(timeout.Token);
        using var second = await fixture.Backend.ConnectAsync("chat/" + room, timeout.Token);
        var secondWelcome = await second.ReceiveWholeAsync(timeout.Token);

        Assert.Equal(WebSocketMessageType.Text, firstWelcome.Type);
        Assert.Null(first.SubProtocol); // nothing offered, nothing selected
        using (var json = JsonDocument.Parse(firstWelcome.Payload))
        {
            var root = json.RootElement;
            Assert.Equal("welcome", root.GetProperty("type").GetString());
            Assert.Equal(RunningBackend.Instance, root.GetProperty("backend").GetString());
            Assert.Equal(room, root.GetProperty("room").GetString());
            Assert.Equal(1, root.GetProperty("members").GetInt32());
        }

        Assert.Equal($$"""{"type":"welcome","backend":"t1","room":"{{room}}","members":2}""", secondWelcome.Text);
    }

    [Fact]
    public async Task Room_name_is_url_decoded()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var client = await fixture.Backend.ConnectAsync("chat/" + Uri.EscapeDataString("café lounge"), timeout.Token);
        var welcome = await client.ReceiveWholeAsync(timeout.Token);

        using var json = JsonDocument.Parse(welcome.Payload);
        Assert.Equal("café lounge", json.RootElement.GetProperty("room").GetString());
    }

    [Fact]
    public async Task Text_is_broadcast_verbatim_to_all_members_but_not_to_other_rooms()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var room = UniqueRoom();
        using var alice = await fixture.Backend.ConnectAsync("chat/" + room, timeout.Token);
        await alice.ReceiveWholeAsync(timeout.Token);
        using var bob = await fixture.Backend.ConnectAsync("chat/" + room, timeout.Token);
        await bob.ReceiveWholeAsync(timeout.Token);
        using var outsider = await fixture.Backend.ConnectAsync("chat/" + UniqueRoom(), timeout.Token);
        await outsider.ReceiveWholeAsync(timeout.Token);

        const string line = "hello, {\"not\": \"parsed\"} ✓";
        await alice.SendTextAsync(line, timeout.Token);
        await alice.SendAsync(new byte[] { 1, 2, 3 }, WebSocketMessageType.Binary, true, timeout.Token); // ignored
        foreach (var member in new[] { alice, bob })
        {
            var first = await member.ReceiveWholeAsync(timeout.Token);
            Assert.Equal(WebSocketMessageType.Text, first.Type);
            Assert.Equal(line, first.Text);
        }

        // Only after everyone has alice's line: two senders' messages have no order between them.
        await bob.SendTextAsync("second", timeout.Token);
        foreach (var member in new[] { alice, bob })
        {
            Assert.Equal("second", (await member.ReceiveWholeAsync(timeout.Token)).Text);
        }

        // The outsider's room is quiet: a message sent there is the next (and only) thing it receives.
        await outsider.SendTextAsync("own room", timeout.Token);
        Assert.Equal("own room", (await outsider.ReceiveWholeAsync(timeout.Token)).Text);
    }

    [Fact]
    public async Task Message_of_64_KiB_is_relayed_and_one_byte_more_closes_with_1009()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var client = await fixture.Backend.ConnectAsync("chat/" + UniqueRoom(), timeout.Token);
        await client.ReceiveWholeAsync(timeout.Token);

        var limit = new string('a', 64 * 1024);
        await client.SendTextAsync(limit, timeout.Token);
        Assert.Equal(limit, (await client.ReceiveWholeAsync(timeout.Token)).Text);

        await client.SendTextAsync(limit + "b", timeout.Token);
        var close = await client.ReceiveWholeAsync(timeout.Token);
        Assert.Equal(WebSocketMessageType.Close, close.Type);
        Assert.Equal(WebSocketCloseStatus.MessageTooBig, close.CloseStatus);
        await client.AnswerCloseAsync(timeout.Token);
    }

    [Fact]
    public async Task Client_close_is_answered_with_the_same_status()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        using var client = await fixture.Backend.ConnectAsync("chat/" + UniqueRoom(), timeout.Token);
        await client.ReceiveWholeAsync(timeout.Token);

        await client.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", timeout.Token);

        Assert.Equal(WebSocketState.Closed, client.State);
        Assert.Equal(WebSocketCloseStatus.NormalClosure, client.CloseStatus);
        Assert.Equal("bye", client.CloseStatusDescription);
    }

    [Fact]
    public async Task Member_that_drops_without_a_close_leaves_the_room()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var room = UniqueRoom();
        using (var dropped = await fixture.Backend.ConnectAsync("chat/" + room, timeout.Token))
        {
            await dropped.ReceiveWholeAsync(timeout.Token);
            dropped.Abort(); // TCP goes away, no Close frame
        }

        // The server notices asynchronously; a fresh member must soon be alone in the room again.
        while (true)
        {
            using var probe = await fixture.Backend.ConnectAsync("chat/" + room, timeout.Token);
            using var welcome = JsonDocument.Parse((await probe.ReceiveWholeAsync(timeout.Token)).Payload);
            await probe.CloseAsync(WebSocketCloseStatus.NormalClosure, null, timeout.Token);
            if (welcome.RootElement.GetProperty("members").GetInt32() == 1)
            {
                return;
            }

            await Task.Delay(50, timeout.Token);
        }
    }

    [Fact]
    public async Task Slow_member_is_closed_with_1008_without_holding_up_the_room()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await using var backend = await RunningBackend.StartAsync("--MemberQueueCapacity", "4", "--CloseTimeoutSeconds", "30");
        var room = UniqueRoom();
        using var slow = await backend.ConnectAsync("chat/" + room, timeout.Token);
        await slow.ReceiveWholeAsync(timeout.Token);
        using var fast = await backend.ConnectAsync("chat/" + room, timeout.Token);
        await fast.ReceiveWholeAsync(timeout.Token);

        // "slow" reads nothing while "fast" sends far more than socket buffers plus a 4-message queue hold.
        // "fast" waits for its own copy of each message, so it never has more than one message queued.
        var payload = new string('x', 60 * 1024);
        const int count = 400;
        for (var i = 0; i < count; i++)
        {
            await fast.SendTextAsync(payload, timeout.Token);
            var relayed = await fast.ReceiveWholeAsync(timeout.Token);
            Assert.Equal(WebSocketMessageType.Text, relayed.Type);
            Assert.Equal(payload.Length, relayed.Payload.Length);
        }

        // Now the slow member gets what was already in flight, then the Close.
        Received message;
        var delivered = 0;
        while ((message = await slow.ReceiveWholeAsync(timeout.Token)).Type != WebSocketMessageType.Close)
        {
            delivered++;
        }

        Assert.InRange(delivered, 1, count - 1);
        Assert.Equal(WebSocketCloseStatus.PolicyViolation, message.CloseStatus);
        Assert.Equal("too slow", message.CloseDescription);
        await slow.AnswerCloseAsync(timeout.Token);

        // The room still works for the fast member.
        await fast.SendTextAsync("still here", timeout.Token);
        Assert.Equal("still here", Encoding.UTF8.GetString((await fast.ReceiveWholeAsync(timeout.Token)).Payload));
    }
}
