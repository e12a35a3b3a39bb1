using System.Buffers;
using System.Diagnostics.Metrics;
using System.Net;
using System.Net.WebSockets;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Gateway.Warmup;

/// <summary>
/// The backend behind the warm-up route: a second, minimal Kestrel on a loopback port the system chooses, echoing
/// WebSocket messages with ASP.NET Core's own WebSocket middleware. Built from the same framework code as the public
/// listeners, so serving it warms that code too. It exists only while the warm-up runs.
/// </summary>
internal sealed class WarmupEchoBackend : IAsyncDisposable
{
    private readonly WebApplication _app;

    private WarmupEchoBackend(WebApplication app, Uri address)
    {
        _app = app;
        Address = address;
    }

    public Uri Address { get; }

    public static async Task<WarmupEchoBackend> StartAsync(CancellationToken cancellationToken)
    {
        // The empty builder reads no configuration, environment or command line and logs nothing: the gateway's
        // ASPNETCORE_URLS or logging settings must not reach this private server.
        var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
        builder.Services.Replace(ServiceDescriptor.Singleton<IMeterFactory, PrivateMeterFactory>());
        builder.WebHost.UseKestrelCore().ConfigureKestrel(kestrel =>
        {
            kestrel.AddServerHeader = false;
            kestrel.Listen(IPAddress.Loopback, 0);
        });
        var app = builder.Build();
        app.UseWebSockets();
        app.Run(EchoAsync);
        await app.StartAsync(cancellationToken);
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new WarmupEchoBackend(app, new Uri(address + "/"));
    }

    private static async Task EchoAsync(HttpContext context)
    {
        if (!context.WebSockets.IsWebSocketRequest)
        {
            context.Response.StatusCode = StatusCodes.Status400BadRequest;
            return;
        }
        using var socket = await context.WebSockets.AcceptWebSocketAsync();
        var buffer = ArrayPool<byte>.Shared.Rent(4096);
        try
        {
            while (true)
            {
                var received = await socket.ReceiveAsync(buffer, context.RequestAborted);
                if (received.MessageType == WebSocketMessageType.Close)
                {
                    await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, context.RequestAborted);
                    return;
                }
                await socket.SendAsync(buffer.AsMemory(0, received.Count), received.MessageType, received.EndOfMessage, context.RequestAborted);
            }
        }
        catch (Exception ex) when (ex is WebSocketException or OperationCanceledException or IOException)
        {
            // The warm-up client gave up on this session; it counts its own failures.
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    public async ValueTask DisposeAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));
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
