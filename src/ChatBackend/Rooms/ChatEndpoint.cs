using System.Buffers;
using System.Net.WebSockets;
using System.Text.Json;
using ChatBackend.Sockets;

namespace ChatBackend.Rooms;

/// <summary>
/// <c>/chat/{room}</c>: sends a JSON welcome, then relays every text message verbatim to all members of
/// the room (sender included). Binary messages are ignored; messages over 64 KiB close the socket with 1009.
/// </summary>
internal sealed class ChatEndpoint(RoomRegistry rooms, ConnectionTracker tracker, BackendSettings settings, ILogger<ChatEndpoint> logger)
{
    /// <summary>The header the demo's gateway policy fills from the token's <c>sub</c> (<c>ClaimHeaders</c>).</summary>
    public const string UserHeader = "X-User-Id";

    public async Task HandleAsync(HttpContext context)
    {
        if (!context.WebSockets.IsWebSocketRequest)
        {
            await WebSocketHandshake.RejectNonWebSocketAsync(context).ConfigureAwait(false);
            return;
        }

        var roomName = context.GetRouteValue("room") as string ?? "";
        using var socket = await WebSocketHandshake.AcceptAsync(context, settings).ConfigureAwait(false);
        using var lifetime = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        var member = new RoomMember(socket, settings.MemberQueueCapacity, settings.CloseTimeout, lifetime);

        using var registration = tracker.TryRegister(member);
        if (registration is null)
        {
            // Accepted just as shutdown began: say so instead of joining a room that is about to go away.
            member.RequestClose(WebSocketCloseStatus.EndpointUnavailable, ConnectionTracker.ShutdownDescription);
            await member.RunWriterAsync().ConfigureAwait(false);
            await DrainQuietlyAsync(socket, lifetime.Token).ConfigureAwait(false);
            return;
        }

        // Who the client is, as the gateway's identity policy vouches for it (it strips a client's own copy of the header).
        // Reached directly, without the gateway, anyone can send it: the demo's backends listen on loopback only.
        var user = context.Request.Headers[UserHeader].ToString();
        var members = rooms.Join(roomName, member, count => BuildWelcome(settings.Instance, roomName, count, user));
        Log.MemberJoined(logger, settings.Instance, roomName, socket.SubProtocol ?? "(none)", members);
        var writer = member.RunWriterAsync();
        var endedCleanly = false;
        try
        {
            await ReceiveLoopAsync(socket, roomName, member, lifetime.Token).ConfigureAwait(false);
            endedCleanly = true;
        }
        catch (Exception ex) when (ex is OperationCanceledException or WebSocketException)
        {
            // Peer vanished or the close handshake timed out.
            Log.ConnectionLost(logger, settings.Instance, "/chat/" + roomName, ex);
        }
        finally
        {
            rooms.Leave(roomName, member);
            if (!endedCleanly)
            {
                // No close handshake is coming; cancelling aborts the socket and ends the writer loop,
                // which would otherwise wait for messages forever.
                await lifetime.CancelAsync().ConfigureAwait(false);
            }
        }

        await writer.ConfigureAwait(false);
        Log.MemberLeft(logger, settings.Instance, roomName, socket.CloseStatus, socket.CloseStatusDescription, socket.State);
    }

    private async Task ReceiveLoopAsync(WebSocket socket, string roomName, RoomMember member, CancellationToken token)
    {
        using var buffer = new MessageBuffer();
        while (true)
        {
            var message = await MessageReader.ReadAsync(socket, buffer, BackendSettings.MaxRoomMessageBytes, token).ConfigureAwait(false);
            switch (message.Kind)
            {
                case ReceivedKind.Close:
                    // Answer with the peer's own status (a no-op if we started the close ourselves).
                    member.RequestClose(message.CloseStatus ?? WebSocketCloseStatus.Empty, message.CloseDescription);
                    return;

                case ReceivedKind.TooBig:
                    Log.MessageTooBig(logger, settings.Instance, "/chat/" + roomName, BackendSettings.MaxRoomMessageBytes);
                    member.RequestClose(WebSocketCloseStatus.MessageTooBig, "message too big");
                    await MessageReader.DrainUntilCloseAsync(socket, token).ConfigureAwait(false);
                    return;

                case ReceivedKind.Text when !member.IsClosing:
                    // Copy: the buffer is reused for the next message while members' queues still hold this one.
                    var overflowed = rooms.Broadcast(roomName, buffer.WrittenMemory.ToArray());
                    foreach (var _ in overflowed)
                    {
                        Log.MemberTooSlow(logger, settings.Instance, roomName);
                    }

                    break;

                default:
                    // Binary messages have no meaning in a chat room, and a closing member's messages are dropped.
                    break;
            }
        }
    }

    private static async Task DrainQuietlyAsync(WebSocket socket, CancellationToken token)
    {
        try
        {
            await MessageReader.DrainUntilCloseAsync(socket, token).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is OperationCanceledException or WebSocketException)
        {
            // The peer did not finish the handshake in time; the socket is gone either way.
        }
    }

    /// <summary>
    /// {"type":"welcome","backend":"…","room":"…","members":n}, plus "user":"…" when the gateway named the client;
    /// written by hand to fix the property order.
    /// </summary>
    private static ReadOnlyMemory<byte> BuildWelcome(string instance, string room, int members, string user)
    {
        var output = new ArrayBufferWriter<byte>(128);
        using (var json = new Utf8JsonWriter(output))
        {
            json.WriteStartObject();
            json.WriteString("type", "welcome");
            json.WriteString("backend", instance);
            json.WriteString("room", room);
            json.WriteNumber("members", members);
            if (user.Length > 0)
            {
                json.WriteString("user", user);
            }
            json.WriteEndObject();
        }

        return output.WrittenMemory.ToArray();
    }
}
