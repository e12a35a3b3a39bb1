using System.Net.WebSockets;
using ChatBackend.Sockets;

namespace ChatBackend.Echo;

/// <summary>
/// <c>/echo</c>: returns every message whole, with its original type, however it was fragmented (0 bytes
/// to 32 MiB). A client Close is answered with the same status and description, which lets proxy tests
/// check that close codes survive the round trip.
/// </summary>
internal sealed class EchoEndpoint(ConnectionTracker tracker, BackendSettings settings, ILogger<EchoEndpoint> logger)
{
    public async Task HandleAsync(HttpContext context)
    {
        if (!context.WebSockets.IsWebSocketRequest)
        {
            await WebSocketHandshake.RejectNonWebSocketAsync(context).ConfigureAwait(false);
            return;
        }

        using var socket = await WebSocketHandshake.AcceptAsync(context, settings).ConfigureAwait(false);
        using var lifetime = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        var session = new EchoSession(socket, settings.CloseTimeout, lifetime);
        Log.EchoConnected(logger, settings.Instance, socket.SubProtocol ?? "(none)");

        using var registration = tracker.TryRegister(session);
        try
        {
            if (registration is null)
            {
                await session.CloseAsync(WebSocketCloseStatus.EndpointUnavailable, ConnectionTracker.ShutdownDescription).ConfigureAwait(false);
                await MessageReader.DrainUntilCloseAsync(socket, lifetime.Token).ConfigureAwait(false);
            }
            else
            {
                await EchoLoopAsync(socket, session, lifetime.Token).ConfigureAwait(false);
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or WebSocketException)
        {
            Log.ConnectionLost(logger, settings.Instance, "/echo", ex);
        }

        Log.EchoDisconnected(logger, settings.Instance, socket.CloseStatus, socket.CloseStatusDescription, socket.State);
    }

    private async Task EchoLoopAsync(WebSocket socket, EchoSession session, CancellationToken token)
    {
        using var buffer = new MessageBuffer();
        while (true)
        {
            var message = await MessageReader.ReadAsync(socket, buffer, BackendSettings.MaxEchoMessageBytes, token).ConfigureAwait(false);
            switch (message.Kind)
            {
                case ReceivedKind.Close:
                    // If we closed first the socket is already Closed and this does nothing.
                    await session.CloseAsync(message.CloseStatus ?? WebSocketCloseStatus.Empty, message.CloseDescription).ConfigureAwait(false);
                    return;

                case ReceivedKind.TooBig:
                    Log.MessageTooBig(logger, settings.Instance, "/echo", BackendSettings.MaxEchoMessageBytes);
                    await session.CloseAsync(WebSocketCloseStatus.MessageTooBig, "message too big").ConfigureAwait(false);
                    await MessageReader.DrainUntilCloseAsync(socket, token).ConfigureAwait(false);
                    return;

                case ReceivedKind.Text:
                    await session.SendAsync(buffer.WrittenMemory, WebSocketMessageType.Text).ConfigureAwait(false);
                    break;

                case ReceivedKind.Binary:
                    await session.SendAsync(buffer.WrittenMemory, WebSocketMessageType.Binary).ConfigureAwait(false);
                    break;
            }
        }
    }
}
