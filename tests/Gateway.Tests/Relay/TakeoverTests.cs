using System.Collections.Concurrent;
using System.Text.Json.Nodes;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Yarp.ReverseProxy.Transforms;
using Yarp.ReverseProxy.Transforms.Builder;

namespace Gateway.Tests.Relay;

/// <summary>
/// After the 101 the tunnel is the relay's: the backend's request and response messages are garbage while the tunnel
/// relays, and on the lean HTTP/1.1 path (ws and wss over HTTP/1.1) the request itself is: its HttpContext, and with it
/// everything the middleware hung on it, is released at the 101 while the connection lives on.
/// </summary>
public sealed class TakeoverTests : IAsyncLifetime
{
    private readonly TestCertificates _certificates = new();
    private readonly ResponseRecorder _recorder = new();
    private Backend _backend = null!;
    private GatewayServer _gateway = null!;

    public async Task InitializeAsync()
    {
        _backend = await Backend.StartAsync("echo-1");
        var (certificate, key, _) = _certificates.IssueServer("server", "localhost");
        var proxy = GatewayServer.Proxy([("echo", "/echo", "echo")], [("echo", [_backend])]);
        _gateway = await GatewayServer.StartAsync(GatewayServer.Config(proxy, [new JsonObject { ["Path"] = certificate, ["KeyPath"] = key }]),
            services => services.AddSingleton<ITransformProvider>(_recorder));
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _backend.DisposeAsync();
        _certificates.Dispose();
    }

    [Theory]
    [InlineData(Transport.Ws)]
    [InlineData(Transport.WssHttp11)]
    [InlineData(Transport.WssHttp2)]
    public async Task The_backend_messages_and_on_the_lean_path_the_request_are_released_while_the_tunnel_relays(Transport transport)
    {
        // HTTP/2 streams are Kestrel's: there the request lasts as long as its tunnel.
        var requestEnds = transport != Transport.WssHttp2;
        using var socket = await WebSocketClient.ConnectAsync(_gateway, transport, "/echo", _certificates);
        await WebSocketClient.SendTextAsync(socket, "before");
        Assert.Equal("before", await WebSocketClient.ReceiveTextAsync(socket));
        var response = _recorder.Take();

        var released = false;
        for (var attempt = 0; attempt < 50 && !released; attempt++)
        {
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Forced, blocking: true);
            GC.WaitForPendingFinalizers();
            released = !response.Response.IsAlive && !response.Request.IsAlive && (!requestEnds || !response.Context.IsAlive);
            if (!released)
            {
                await Task.Delay(100);
            }
        }
        Assert.True(released, $"still reachable while the tunnel is open: response {response.Response.IsAlive}, request {response.Request.IsAlive}, "
            + $"HttpContext {response.Context.IsAlive} (expected released: {requestEnds})");

        await WebSocketClient.SendTextAsync(socket, "after");
        Assert.Equal("after", await WebSocketClient.ReceiveTextAsync(socket));
        Assert.Equal(System.Net.WebSockets.WebSocketCloseStatus.NormalClosure, await WebSocketClient.CloseAsync(socket));
    }

    /// <summary>Notes, weakly, the backend response, its request and the client's request context of every proxied handshake.</summary>
    private sealed class ResponseRecorder : ITransformProvider
    {
        private readonly ConcurrentQueue<(WeakReference Response, WeakReference Request, WeakReference Context)> _seen = new();

        public void ValidateRoute(TransformRouteValidationContext context)
        {
        }

        public void ValidateCluster(TransformClusterValidationContext context)
        {
        }

        public void Apply(TransformBuilderContext context) => context.AddResponseTransform(transform =>
        {
            if (transform.ProxyResponse is { RequestMessage: { } request } response)
            {
                _seen.Enqueue((new WeakReference(response), new WeakReference(request), new WeakReference(transform.HttpContext)));
            }
            return default;
        });

        public (WeakReference Response, WeakReference Request, WeakReference Context) Take()
        {
            Assert.True(_seen.TryDequeue(out var seen), "no handshake was proxied");
            Assert.True(_seen.IsEmpty, "more than one handshake was proxied");
            return seen;
        }
    }
}
