using System.Collections.Concurrent;
using System.Net.WebSockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Gateway.Tests.Handshake;

/// <summary>What the probe backend saw of one request.</summary>
public sealed record ProbeRequest(string Path, string? Subprotocols, string? ForwardedFor);

/// <summary>
/// A tiny Kestrel backend that counts every request it receives (so a test can show a refused handshake never
/// reached it), echoes WebSocket messages, and serves 200 to plain HTTP. Under <c>/liar</c> it misbehaves: it accepts
/// every WebSocket with the subprotocol <see cref="UnofferedSubprotocol"/>, which no client offers.
/// </summary>
public sealed class ProbeBackend : IAsyncDisposable
{
    public const string UnofferedSubprotocol = "nobody-offered";

    private readonly WebApplication _app;
    private int _requests;

    private ProbeBackend(WebApplication app) => _app = app;

    public Uri Address { get; private set; } = null!;

    public int Requests => Volatile.Read(ref _requests);

    public ConcurrentQueue<ProbeRequest> Seen { get; } = new();

    public static async Task<ProbeBackend> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        var app = builder.Build();
        var probe = new ProbeBackend(app);
        app.Use(async (context, next) =>
        {
            Interlocked.Increment(ref probe._requests);
            probe.Seen.Enqueue(new ProbeRequest(context.Request.Path, Header(context, "Sec-WebSocket-Protocol"), Header(context, "X-Forwarded-For")));
            await next(context);
        });
        app.UseWebSockets();
        app.Run(HandleAsync);
        await app.StartAsync();
        var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        probe.Address = new Uri(bound.TrimEnd('/') + "/");
        return probe;
    }

    private static string? Header(HttpContext context, string name) =>
        context.Request.Headers.TryGetValue(name, out var value) ? value.ToString() : null;

    private static async Task HandleAsync(HttpContext context)
    {
        if (!context.WebSockets.IsWebSocketRequest)
        {
            await context.Response.WriteAsync("probe\n");
            return;
        }
        var protocol = context.Request.Path.StartsWithSegments("/liar")
            ? UnofferedSubprotocol
            : context.WebSockets.WebSocketRequestedProtocols.FirstOrDefault();
        using var socket = await context.WebSockets.AcceptWebSocketAsync(protocol);
        var buffer = new byte[16 * 1024];
        try
        {
            while (true)
            {
                var result = await socket.ReceiveAsync(buffer, context.RequestAborted);
                if (result.MessageType == WebSocketMessageType.Close)
                {
                    await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, context.RequestAborted);
                    return;
                }
                await socket.SendAsync(buffer.AsMemory(0, result.Count), result.MessageType, result.EndOfMessage, context.RequestAborted);
            }
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException)
        {
            // The client (or the gateway refusing it) went away: nothing to echo to.
        }
    }

    public async ValueTask DisposeAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            await _app.StopAsync(timeout.Token);
        }
        finally
        {
            await _app.DisposeAsync();
        }
    }
}
