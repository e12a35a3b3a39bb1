using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;

namespace Gateway.Listeners.LeanHttp1;

/// <summary>
/// A Kestrel connection middleware that takes the HTTP/1.1 connections whose first request is a plain WebSocket
/// upgrade and runs the application's pipeline for it over a lean <see cref="HttpContext"/> (<see cref="LeanExchange"/>),
/// with no <c>Http1Connection</c>, request and response header collections, output producer, timeout control or
/// request-body machinery; after the 101 the relay reads and writes the connection's transport directly. Anything else
/// is handed to Kestrel untouched (nothing consumed).
/// </summary>
internal sealed class LeanHttp1Connections(ConnectionDelegate next, IServiceProvider services, bool tls)
{
    private LeanHttp1Pipeline? _pipeline;
    private IServiceScopeFactory? _scopes;
    private ILogger? _logger;
    private KestrelServerLimits? _limits;

    public static void Use(ListenOptions endpoint, IServiceProvider services, bool tls) =>
        endpoint.Use(next => new LeanHttp1Connections(next, services, tls).OnConnectionAsync);

    private async Task OnConnectionAsync(ConnectionContext connection)
    {
        _pipeline ??= services.GetRequiredService<LeanHttp1Pipeline>();
        var application = _pipeline.Application;
        if (application is null || !SpeaksHttp11(connection))
        {
            await next(connection).ConfigureAwait(false);
            return;
        }
        _scopes ??= services.GetRequiredService<IServiceScopeFactory>();
        _logger ??= services.GetRequiredService<ILoggerFactory>().CreateLogger("Gateway.Listeners.LeanHttp1");
        _limits ??= services.GetRequiredService<IOptions<KestrelServerOptions>>().Value.Limits;

        var (head, closed) = await TakeHeadAsync(connection).ConfigureAwait(false);
        if (closed)
        {
            return;
        }
        if (head is null)
        {
            await next(connection).ConfigureAwait(false);
            return;
        }
        Log.Taken(_logger, connection.RemoteEndPoint);

        // The request runs in a method of its own, so that this frame, which lives as long as the connection, holds
        // nothing of it while a tunnel that took the connection over at the 101 relays.
        var (handBack, tunnel) = await RunRequestAsync(connection, head, application).ConfigureAwait(false);
        if (tunnel is not null)
        {
            await tunnel.ConfigureAwait(false);
        }
        else if (handBack)
        {
            // A refusal: the connection still speaks HTTP/1.1, and Kestrel takes it over for any further request.
            await next(connection).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// The first request's head when it is the lean path's; null when it is Kestrel's (nothing consumed). A method of its
    /// own so that the frame that lives as long as the connection keeps neither the transport's reader nor its buffers
    /// (a tunnel that took the socket over leaves the pipes unreachable).
    /// </summary>
    private async ValueTask<(LeanRequestHead? Head, bool Closed)> TakeHeadAsync(ConnectionContext connection)
    {
        var input = connection.Transport.Input;
        if (!input.TryRead(out var result))
        {
            // Before a first request Kestrel waits its keep-alive timeout for the first bytes; so does this.
            using var timeout = new CancellationTokenSource(_limits!.KeepAliveTimeout);
            try
            {
                result = await input.ReadAsync(timeout.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException) when (timeout.IsCancellationRequested)
            {
                // Closed as Kestrel closes it (a FIN, not a reset): the connection ends when the middleware returns.
                return (null, true);
            }
        }
        // One look: a head that did not come whole with the first bytes is Kestrel's, with its own timeouts. What is left
        // to Kestrel is left unconsumed and unexamined, so its first read returns it at once.
        SequencePosition headEnd = default;
        var head = result.IsCanceled ? null : LeanRequestHead.TryParse(result.Buffer, _limits!, out headEnd);
        if (head is null)
        {
            input.AdvanceTo(result.Buffer.Start);
            return (null, false);
        }
        input.AdvanceTo(headEnd);
        return (head, false);
    }

    /// <summary>
    /// Runs the application for the one request and writes its answer. Returns whether Kestrel takes the connection over
    /// for further requests, and the task that owns the connection when the request ended at a 101 and handed it over.
    /// </summary>
    private async Task<(bool HandBack, Task? Tunnel)> RunRequestAsync(ConnectionContext connection, LeanRequestHead head, RequestDelegate application)
    {
        var exchange = new LeanExchange(connection, head, tls, _logger!);
        var context = new DefaultHttpContext(exchange) { ServiceScopeFactory = _scopes! };
        try
        {
            await application(context).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // As Kestrel: a 500 when nothing was sent yet, the connection cut otherwise.
            Log.PipelineFailed(_logger!, ex);
            exchange.Fail();
        }
        try
        {
            await exchange.FinishAsync().ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is IOException or OperationCanceledException or InvalidOperationException)
        {
            connection.Abort(new ConnectionAbortedException("the answer could not be written", ex));
            return (false, exchange.Held);
        }
        finally
        {
            if (exchange[typeof(IServiceProvidersFeature)] is IAsyncDisposable scope)
            {
                await scope.DisposeAsync().ConfigureAwait(false);
            }
        }
        return (!exchange.Upgraded && !exchange.CloseAfterResponse, exchange.Held);
    }

    /// <summary>Plain HTTP/1.1, or TLS that agreed on HTTP/1.1 (or on nothing): an h2 connection is Kestrel's.</summary>
    private bool SpeaksHttp11(ConnectionContext connection) =>
        !tls || connection.Features.Get<ITlsApplicationProtocolFeature>() is not { } alpn
        || alpn.ApplicationProtocol.IsEmpty || alpn.ApplicationProtocol.Span.SequenceEqual("http/1.1"u8);
}
