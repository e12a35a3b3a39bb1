using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;

namespace Gateway.Listeners.Takeover;

/// <summary>One bound listen socket of the gateway's own transport: accepts connections for Kestrel.</summary>
internal sealed class TakeoverListener(Socket listenSocket, MemoryPool<byte> pool, PipeOptions inputOptions, PipeOptions outputOptions, ILogger logger)
    : IConnectionListener
{
    public EndPoint EndPoint { get; } = listenSocket.LocalEndPoint!;

    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        while (true)
        {
            Socket socket;
            try
            {
                socket = await listenSocket.AcceptAsync(cancellationToken).ConfigureAwait(false);
            }
            catch (ObjectDisposedException)
            {
                return null; // unbound
            }
            catch (SocketException ex) when (ex.SocketErrorCode == SocketError.OperationAborted)
            {
                return null;
            }
            catch (SocketException ex)
            {
                // A connection reset before it was accepted: the next one.
                Log.AcceptFailed(logger, ex.SocketErrorCode);
                continue;
            }
            // As Kestrel's transport: small writes (a 101, a pong) go out at once.
            socket.NoDelay = true;
            var connection = new TakeoverConnection(socket, pool, inputOptions, outputOptions);
            connection.Start();
            return connection;
        }
    }

    public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
    {
        listenSocket.Dispose();
        return default;
    }

    public ValueTask DisposeAsync()
    {
        // Kestrel disposes a listener once its connections have ended (or been aborted).
        listenSocket.Dispose();
        pool.Dispose();
        return default;
    }
}
