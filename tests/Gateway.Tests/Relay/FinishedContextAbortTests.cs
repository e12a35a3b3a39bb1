using System.Collections.Concurrent;
using System.Net;
using System.Net.WebSockets;
using System.Text.Json.Nodes;
using Gateway.Relay;
using Gateway.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Tests.Relay;

/// <summary>
/// The sweep and the admin API cut a client on their own threads, and a cut they began can land after its tunnel ended.
/// By then the request's <c>HttpContext</c> is finished: Kestrel has disposed it (an HTTP/2 WebSocket stream is not
/// pooled) or given it to another request (a pooled one), and an abort through it would throw on the sweep's thread or
/// cut a stranger. The tunnel lets go of its context when it completes, under the lock its abort takes.
/// </summary>
public sealed class FinishedContextAbortTests : IAsyncLifetime
{
    private readonly TestCertificates _certificates = new();
    private RawBackend _backend = null!;

    public Task InitializeAsync()
    {
        _backend = new RawBackend();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _backend.DisposeAsync();
        _certificates.Dispose();
    }

    [Fact]
    public async Task A_late_abort_of_an_ended_tunnel_neither_throws_on_its_finished_context_nor_cuts_the_connection()
    {
        var contexts = new ConcurrentDictionary<string, HttpContext>();
        var (certificate, key, _) = _certificates.IssueServer("server", "localhost");
        var proxy = new JsonObject
        {
            ["Routes"] = new JsonObject { ["raw"] = new JsonObject { ["ClusterId"] = "raw", ["Match"] = new JsonObject { ["Path"] = "/raw/{**rest}" } } },
            ["Clusters"] = new JsonObject
            {
                ["raw"] = new JsonObject { ["Destinations"] = new JsonObject { ["d1"] = new JsonObject { ["Address"] = _backend.Address.ToString() } } },
            },
        };
        var config = GatewayServer.Config(proxy, [new JsonObject { ["Path"] = certificate, ["KeyPath"] = key }]);
        await using var gateway = await GatewayServer.StartAsync(config, services => services.AddSingleton<IStartupFilter>(new ContextRecorder(contexts)));
        var sweeper = gateway.Services.GetRequiredService<KeepAliveSweeper>();

        // Two tunnels one after the other on one HTTP/2 connection.
        using var handler = new SocketsHttpHandler();
        handler.SslOptions.RemoteCertificateValidationCallback = _certificates.Validate;
        using var invoker = new HttpMessageInvoker(handler);
        using var first = await ConnectAsync(gateway, invoker, "/raw/first");
        await Retry.Eventually(() => Assert.Single(sweeper.Snapshot()), TimeSpan.FromSeconds(5));
        var ended = sweeper.Snapshot().Single();
        Assert.Equal(WebSocketCloseStatus.NormalClosure, await WebSocketClient.CloseAsync(first));
        await Retry.Eventually(() => Assert.Equal(0, sweeper.OpenTunnels), TimeSpan.FromSeconds(5));

        using var second = await ConnectAsync(gateway, invoker, "/raw/second");
        await WebSocketClient.SendTextAsync(second, "before");
        Assert.Equal("before", await WebSocketClient.ReceiveTextAsync(second));
        // What makes the late abort dangerous: the first tunnel's context is finished (disposed, here) or serves another.
        var firstContext = contexts["/raw/first"];
        Assert.True(IsDisposed(firstContext) || ReferenceEquals(firstContext, contexts["/raw/second"]));

        // A sweep or an admin close of the first tunnel that lands now, as a reap or a stalled client would cut it.
        ended.AbortClient();

        await WebSocketClient.SendTextAsync(second, "after");
        Assert.Equal("after", await WebSocketClient.ReceiveTextAsync(second));
        Assert.Equal(WebSocketState.Open, second.State);
        Assert.Equal(WebSocketCloseStatus.NormalClosure, await WebSocketClient.CloseAsync(second));
    }

    private static bool IsDisposed(HttpContext context)
    {
        try
        {
            _ = context.Features;
            return false;
        }
        catch (ObjectDisposedException)
        {
            return true;
        }
    }

    private async Task<ClientWebSocket> ConnectAsync(GatewayServer gateway, HttpMessageInvoker invoker, string path)
    {
        var client = new ClientWebSocket();
        client.Options.HttpVersion = HttpVersion.Version20;
        client.Options.HttpVersionPolicy = HttpVersionPolicy.RequestVersionExact;
        client.Options.KeepAliveInterval = TimeSpan.Zero;
        using var timeout = new CancellationTokenSource(WebSocketClient.Timeout);
        await client.ConnectAsync(new Uri(gateway.Wss, path.TrimStart('/')), invoker, timeout.Token);
        return client;
    }

    /// <summary>Notes the <c>HttpContext</c> object each request path was served with.</summary>
    private sealed class ContextRecorder(ConcurrentDictionary<string, HttpContext> contexts) : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use((context, nextMiddleware) =>
            {
                contexts[context.Request.Path.Value ?? string.Empty] = context;
                return nextMiddleware(context);
            });
            next(app);
        };
    }
}
