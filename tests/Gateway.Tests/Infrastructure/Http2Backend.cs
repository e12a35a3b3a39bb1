using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net;
using System.Net.WebSockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Gateway.Tests.Infrastructure;

/// <summary>How an <see cref="Http2Backend"/> listens.</summary>
public enum Http2BackendMode
{
    /// <summary>Cleartext HTTP/2 only, with prior knowledge (RFC 9113 section 3.3), WebSockets over extended CONNECT.</summary>
    H2c,
    /// <summary>TLS, ALPN h2 or http/1.1, WebSockets over either.</summary>
    H2Tls,
    /// <summary>TLS, ALPN h2 or http/1.1, but the h2 preface offers no extended CONNECT (RFC 8441 section 3).</summary>
    H2TlsWithoutWebSockets,
    /// <summary>TLS, ALPN http/1.1 only.</summary>
    Http11Tls,
}

/// <summary>What the backend saw of one request: its version, method and, over HTTP/2, the <c>:protocol</c> pseudo-header.</summary>
public sealed record Http2BackendRequest(string Protocol, string Method, bool ExtendedConnect, string? ConnectProtocol);

/// <summary>
/// A real Kestrel WebSocket backend that speaks HTTP/2 (or, for the fallback, refuses to carry WebSockets over it). Every
/// WebSocket gets "welcome PROTOCOL" first, then its messages echoed; a Close is noted and answered with the same code. The
/// text message "abort" makes it abort the request: an RST_STREAM over HTTP/2 (RFC 9113 section 6.4), a reset over HTTP/1.1.
/// </summary>
public sealed class Http2Backend : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly ConcurrentQueue<ConnectProtocolStripper> _stripped = new();

    private Http2Backend(WebApplication app) => _app = app;

    /// <summary>http://127.0.0.1:PORT/ or https://127.0.0.1:PORT/</summary>
    public Uri Address { get; private set; } = null!;

    public ConcurrentQueue<Http2BackendRequest> Requests { get; } = new();

    /// <summary>Every connection's ALPN choice (empty over cleartext), in order.</summary>
    public ConcurrentQueue<string> Alpn { get; } = new();

    /// <summary>The h2 connections whose preface went out without SETTINGS_ENABLE_CONNECT_PROTOCOL.</summary>
    public int StrippedPrefaces => _stripped.Count(stripper => stripper.Stripped);

    public TaskCompletionSource<(WebSocketCloseStatus? Status, string? Description)> CloseReceived { get; } =
        new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <param name="certificate">The server certificate with its key, for every mode but <see cref="Http2BackendMode.H2c"/>.</param>
    public static async Task<Http2Backend> StartAsync(Http2BackendMode mode, X509Certificate2? certificate = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        Http2Backend? backend = null;
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0, listen =>
        {
            listen.Protocols = mode switch
            {
                Http2BackendMode.H2c => HttpProtocols.Http2,
                Http2BackendMode.Http11Tls => HttpProtocols.Http1,
                _ => HttpProtocols.Http1AndHttp2,
            };
            if (mode == Http2BackendMode.H2c)
            {
                return;
            }
            listen.UseHttps(certificate ?? throw new ArgumentNullException(nameof(certificate)));
            // After TLS: sees the ALPN choice and the plaintext HTTP/2 frames.
            listen.Use(next => connection =>
            {
                var alpn = connection.Features.Get<ITlsApplicationProtocolFeature>()?.ApplicationProtocol ?? default;
                backend!.Alpn.Enqueue(Encoding.ASCII.GetString(alpn.Span));
                if (mode == Http2BackendMode.H2TlsWithoutWebSockets && alpn.Span.SequenceEqual("h2"u8))
                {
                    var stripper = new ConnectProtocolStripper(connection.Transport.Output.AsStream());
                    backend._stripped.Enqueue(stripper);
                    connection.Transport = new DuplexPipe(connection.Transport.Input, PipeWriter.Create(stripper));
                }
                return next(connection);
            });
        }));
        var app = builder.Build();
        backend = new Http2Backend(app);
        app.Use(async (context, next) =>
        {
            var connect = context.Features.Get<IHttpExtendedConnectFeature>();
            backend.Requests.Enqueue(new Http2BackendRequest(context.Request.Protocol, context.Request.Method,
                connect?.IsExtendedConnect == true, connect?.Protocol));
            await next(context);
        });
        app.UseWebSockets();
        app.Run(backend.HandleAsync);
        await app.StartAsync();
        var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        backend.Address = new Uri(bound.TrimEnd('/') + "/");
        return backend;
    }

    private async Task HandleAsync(HttpContext context)
    {
        if (!context.WebSockets.IsWebSocketRequest)
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }
        using var socket = await context.WebSockets.AcceptWebSocketAsync();
        var buffer = new byte[64 * 1024];
        try
        {
            await socket.SendAsync(Encoding.UTF8.GetBytes($"welcome {context.Request.Protocol}"), WebSocketMessageType.Text, true, context.RequestAborted);
            while (true)
            {
                var result = await socket.ReceiveAsync(buffer, context.RequestAborted);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    CloseReceived.TrySetResult((result.CloseStatus, result.CloseStatusDescription));
                    await socket.CloseOutputAsync(result.CloseStatus ?? WebSocketCloseStatus.Empty, result.CloseStatusDescription, context.RequestAborted);
                    return;
                }
                if (result is { MessageType: WebSocketMessageType.Text, EndOfMessage: true } && buffer.AsSpan(0, result.Count).SequenceEqual("abort"u8))
                {
                    context.Abort();
                    return;
                }
                await socket.SendAsync(buffer.AsMemory(0, result.Count), result.MessageType, result.EndOfMessage, context.RequestAborted);
            }
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException)
        {
            // The gateway went away: nothing left to echo to.
        }
    }

    public async ValueTask DisposeAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await _app.StopAsync(timeout.Token);
        await _app.DisposeAsync();
    }

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
}
