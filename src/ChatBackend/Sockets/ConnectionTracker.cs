using System.Net.WebSockets;

namespace ChatBackend.Sockets;

/// <summary>A live socket that can be asked to close itself; the owner decides how, because only it may send.</summary>
internal interface IClosableConnection
{
    /// <summary>Starts a close handshake without blocking the caller.</summary>
    void BeginClose(WebSocketCloseStatus status, string description);

    /// <summary>Drops the connection without a handshake; used when the handshake did not finish in time.</summary>
    void Abort();
}

/// <summary>
/// Knows every open WebSocket so that shutdown can send 1001 "going away" instead of letting Kestrel cut
/// TCP connections. It is a lifecycle service because <see cref="StoppingAsync"/> runs, and is awaited,
/// before the server stops; a plain ApplicationStopping callback could not wait for the handshakes.
/// </summary>
internal sealed partial class ConnectionTracker(BackendSettings settings, ILogger<ConnectionTracker> logger) : IHostedLifecycleService
{
    public const string ShutdownDescription = "backend shutting down";

    private readonly Lock _gate = new();
    private readonly Dictionary<IClosableConnection, TaskCompletionSource> _open = [];
    private bool _stopping;

    /// <summary>
    /// Adds a connection; disposing the result marks it finished. Returns null during shutdown, in which
    /// case the caller should close the socket with 1001 right away.
    /// </summary>
    public IDisposable? TryRegister(IClosableConnection connection)
    {
        lock (_gate)
        {
            if (_stopping)
            {
                return null;
            }

            _open.Add(connection, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
            return new Registration(this, connection);
        }
    }

    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        KeyValuePair<IClosableConnection, TaskCompletionSource>[] open;
        lock (_gate)
        {
            _stopping = true;
            open = [.. _open];
        }

        if (open.Length == 0)
        {
            return;
        }

        LogClosingForShutdown(logger, settings.Instance, open.Length);
        foreach (var (connection, _) in open)
        {
            connection.BeginClose(WebSocketCloseStatus.EndpointUnavailable, ShutdownDescription);
        }

        // Bounded: a client that never answers must not hold up the process beyond the close timeout.
        try
        {
            await Task.WhenAll(open.Select(entry => entry.Value.Task))
                .WaitAsync(settings.CloseTimeout, cancellationToken)
                .ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is TimeoutException or OperationCanceledException)
        {
            foreach (var (connection, finished) in open)
            {
                if (!finished.Task.IsCompleted)
                {
                    connection.Abort();
                }
            }
        }
    }

    private void Unregister(IClosableConnection connection)
    {
        TaskCompletionSource? finished;
        lock (_gate)
        {
            _open.Remove(connection, out finished);
        }

        finished?.TrySetResult();
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    [LoggerMessage(EventId = 20, Level = LogLevel.Information, Message = "Backend {Instance} closing {Count} open WebSocket(s) for shutdown")]
    private static partial void LogClosingForShutdown(ILogger logger, string instance, int count);

    private sealed class Registration(ConnectionTracker owner, IClosableConnection connection) : IDisposable
    {
        private int _disposed;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                owner.Unregister(connection);
            }
        }
    }
}
