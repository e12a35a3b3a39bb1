using System.Collections.Concurrent;
using System.Net;
using System.Net.WebSockets;
using System.Text.Json.Nodes;
using Gateway.LoadBalancing;
using Gateway.Relay;
using Gateway.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Yarp.ReverseProxy;

namespace Gateway.Tests.Relay;

/// <summary>
/// The gateway's tunnel forwarder on every client path (ws and wss over the lean HTTP/1.1 path, the same over Kestrel's
/// HTTP/1.1, wss over HTTP/2): each open tunnel counts on its destination until it closes, and an HTTP/2 client's
/// handshake goes to an HTTP/1.1 backend with a key of the gateway's, whose proof is checked.
/// </summary>
public sealed class TunnelForwarderTests : IAsyncLifetime
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

    private async Task<GatewayServer> StartAsync(bool leanUpgrades, Action<IServiceCollection>? configureServices = null)
    {
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
        config["Gateway"]!["LeanUpgrades"] = leanUpgrades;
        return await GatewayServer.StartAsync(config, configureServices);
    }

    [Theory]
    [InlineData(Transport.Ws, true)]
    [InlineData(Transport.Ws, false)]
    [InlineData(Transport.WssHttp11, false)]
    [InlineData(Transport.WssHttp2, true)]
    public async Task The_middleware_that_ran_the_handshake_has_returned_while_the_tunnel_relays(Transport transport, bool leanUpgrades)
    {
        // A middleware inside the gateway's outermost one, as any of the pipeline's: it must not wait for the tunnel.
        var returned = new ConcurrentQueue<string>();
        await using var gateway = await StartAsync(leanUpgrades, services => services.AddSingleton<IStartupFilter>(new ReturnRecorder(returned)));

        using var client = await WebSocketClient.ConnectAsync(gateway, transport, "/raw/unwound", _certificates);
        await Retry.Eventually(() => Assert.Contains("/raw/unwound", returned), TimeSpan.FromSeconds(5));

        await WebSocketClient.SendTextAsync(client, "still relayed");
        Assert.Equal("still relayed", await WebSocketClient.ReceiveTextAsync(client));
        Assert.Equal(1, DestinationLoad.Tunnels(TheDestination(gateway)));
        Assert.Equal(WebSocketCloseStatus.NormalClosure, await WebSocketClient.CloseAsync(client));
    }

    private static Yarp.ReverseProxy.Model.DestinationState TheDestination(GatewayServer gateway)
    {
        Assert.True(gateway.Services.GetRequiredService<IProxyStateLookup>().TryGetCluster("raw", out var cluster));
        return cluster.Destinations["d1"];
    }

    /// <summary>
    /// The sweep and the admin API cut a client on their own threads, and a cut they began can land after its tunnel
    /// ended. By then the request's <c>HttpContext</c> is finished: Kestrel has disposed it (an HTTP/2 WebSocket stream is
    /// not pooled) or given it to another request (a pooled one), and an abort through it would throw on the sweep's thread
    /// or cut a stranger. The tunnel lets go of its context when it completes, under the lock its abort takes.
    /// </summary>
    [Fact]
    public async Task A_late_abort_of_an_ended_tunnel_neither_throws_on_its_finished_context_nor_cuts_the_connection()
    {
        var contexts = new ConcurrentDictionary<string, HttpContext>();
        await using var gateway = await StartAsync(leanUpgrades: true, services => services.AddSingleton<IStartupFilter>(new ContextRecorder(contexts)));
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

    /// <summary>Notes the path of each request whose middleware call has returned.</summary>
    private sealed class ReturnRecorder(ConcurrentQueue<string> returned) : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use(async (context, inner) =>
            {
                await inner(context);
                returned.Enqueue(context.Request.Path.Value!);
            });
            next(app);
        };
    }

    [Theory]
    [InlineData(Transport.Ws, true)]
    [InlineData(Transport.WssHttp11, true)]
    [InlineData(Transport.Ws, false)]
    [InlineData(Transport.WssHttp11, false)]
    [InlineData(Transport.WssHttp2, true)]
    public async Task Each_open_tunnel_counts_on_its_destination_until_it_closes(Transport transport, bool leanUpgrades)
    {
        await using var gateway = await StartAsync(leanUpgrades);
        Assert.True(gateway.Services.GetRequiredService<IProxyStateLookup>().TryGetCluster("raw", out var cluster));
        var destination = cluster.Destinations["d1"];
        var clients = new List<ClientWebSocket>();
        try
        {
            for (var i = 0; i < 3; i++)
            {
                clients.Add(await WebSocketClient.ConnectAsync(gateway, transport, $"/raw/{i}", _certificates));
            }
            Assert.Equal(3, DestinationLoad.Tunnels(destination));
            // YARP's own count is for its forwarder's plain requests: the tunnels never pass it.
            Assert.Equal(0, destination.ConcurrentRequestCount);

            Assert.Equal(WebSocketCloseStatus.NormalClosure, await WebSocketClient.CloseAsync(clients[0]));
            await Retry.Eventually(() => Assert.Equal(2, DestinationLoad.Tunnels(destination)), TimeSpan.FromSeconds(5));
        }
        finally
        {
            foreach (var client in clients)
            {
                client.Abort();
                client.Dispose();
            }
        }
        await Retry.Eventually(() => Assert.Equal(0, DestinationLoad.Tunnels(destination)), TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task An_http2_client_reaches_an_http11_backend_with_a_key_of_the_gateways_and_a_wrong_proof_is_refused()
    {
        await using var gateway = await StartAsync(leanUpgrades: true);

        using (var client = await WebSocketClient.ConnectAsync(gateway, Transport.WssHttp2, "/raw/a", _certificates))
        {
            Assert.Equal(HttpStatusCode.OK, client.HttpStatusCode);
            Assert.True(_backend.Heads.TryDequeue(out var head));
            // RFC 6455 section 4.1: an HTTP/1.1 upgrade with a 16-byte nonce, which the HTTP/2 client never sent (RFC 8441).
            var key = head.Split("\r\n").Single(line => line.StartsWith("Sec-WebSocket-Key:", StringComparison.OrdinalIgnoreCase))[18..].Trim();
            Assert.Equal(16, Convert.FromBase64String(key).Length);
            Assert.StartsWith("GET /raw/a HTTP/1.1\r\n", head);
            Assert.Contains("\r\nUpgrade: websocket\r\n", head, StringComparison.OrdinalIgnoreCase);
            client.Abort();
        }

        _backend.WrongAccept = true;
        var refused = await Assert.ThrowsAsync<WebSocketException>(() => WebSocketClient.ConnectAsync(gateway, Transport.WssHttp2, "/raw/b", _certificates));
        Assert.Contains("502", refused.Message);
    }
}
