using Gateway.Health;
using System.Net;
using System.Net.Sockets;
using Gateway.Proxy;
using Gateway.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Yarp.ReverseProxy.Forwarder;

namespace Gateway.Tests.Health;

/// <summary>
/// What YARP's forwarder leaves in its error feature for real failures against loopback peers, and which of them
/// <see cref="ConnectFailure"/> calls a connect failure (the only ones retried on another destination).
/// </summary>
public sealed class ConnectFailureTests
{
    [Fact]
    public async Task A_refused_connection_is_a_connect_failure()
    {
        using var dead = new RefusingPort();
        var (error, exception) = await ForwardAsync(dead.Address.ToString(), new SocketsHttpHandler());

        Assert.Equal(ForwarderError.Request, error);
        Assert.True(ConnectFailure.TryGet(error, exception, out var message));
        Assert.Contains("refused", message, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task A_refused_upgrade_from_the_gateways_own_connector_is_a_connect_failure()
    {
        using var dead = new RefusingPort();
        using var connector = new HttpMessageInvoker(new UpgradeConnector(new SocketsHttpHandler()));
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(dead.Address, "chat")) { Version = HttpVersion.Version11 };
        request.Headers.TryAddWithoutValidation("Upgrade", "websocket");
        request.Headers.TryAddWithoutValidation("Connection", "Upgrade");

        var exception = await Assert.ThrowsAsync<HttpRequestException>(() => connector.SendAsync(request, CancellationToken.None));

        Assert.True(ConnectFailure.TryGet(ForwarderError.Request, exception, out var message));
        Assert.Contains($":{dead.Address.Port}", message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task SocketsHttpHandlers_connect_timeout_is_a_connect_failure()
    {
        // A listener that never accepts: once its accept queue is full the kernel drops further SYNs, and connect() hangs.
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(0);
        var endPoint = (IPEndPoint)listener.LocalEndPoint!;
        var fillers = new List<Socket>();
        try
        {
            var full = false;
            for (var i = 0; i < 16 && !full; i++)
            {
                var filler = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                fillers.Add(filler);
                using var wait = new CancellationTokenSource(TimeSpan.FromMilliseconds(500));
                try
                {
                    await filler.ConnectAsync(endPoint, wait.Token);
                }
                catch (OperationCanceledException)
                {
                    full = true;
                }
            }
            Assert.True(full, "the accept queue never filled");

            var handler = new SocketsHttpHandler { ConnectTimeout = TimeSpan.FromMilliseconds(300) };
            var (error, exception) = await ForwardAsync($"http://127.0.0.1:{endPoint.Port}/", handler);

            // YARP reports it as a timeout (504); it is still a connect that never happened.
            Assert.Equal(ForwarderError.RequestTimedOut, error);
            Assert.True(ConnectFailure.TryGet(error, exception, out var message), exception?.ToString());
            Assert.NotEmpty(message);
        }
        finally
        {
            foreach (var filler in fillers)
            {
                filler.Dispose();
            }
        }
    }

    [Fact]
    public async Task A_backend_that_accepts_and_hangs_up_is_not_a_connect_failure()
    {
        // The request reached the backend: sending it elsewhere could run it twice.
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var accepts = 0;
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var hangUp = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                using var accepted = await listener.AcceptTcpClientAsync(stop.Token);
                Interlocked.Increment(ref accepts);
                // Some of the request, then a close without a response.
                var buffer = new byte[4096];
                _ = await accepted.GetStream().ReadAsync(buffer, stop.Token);
                accepted.Client.Close();
            }
        });

        var (error, exception) = await ForwardAsync($"http://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}/", new SocketsHttpHandler());
        stop.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => hangUp);

        Assert.True(accepts >= 1);
        Assert.Equal(ForwarderError.Request, error);
        Assert.False(ConnectFailure.TryGet(error, exception, out _), exception?.ToString());
    }

    [Fact]
    public void Other_errors_are_not_connect_failures()
    {
        Assert.False(ConnectFailure.TryGet(ForwarderError.Request, new HttpRequestException(HttpRequestError.InvalidResponse, "bad head"), out _));
        Assert.False(ConnectFailure.TryGet(ForwarderError.Request, new HttpRequestException(HttpRequestError.SecureConnectionError, "tls"), out _));
        Assert.False(ConnectFailure.TryGet(ForwarderError.RequestCanceled, new HttpRequestException(HttpRequestError.ConnectionError, "x"), out _));
        // YARP's activity timeout: a cancellation without a TimeoutException.
        Assert.False(ConnectFailure.TryGet(ForwarderError.RequestTimedOut, new TaskCanceledException(), out _));
        Assert.False(ConnectFailure.TryGet(ForwarderError.ResponseBodyDestination, new IOException("reset"), out _));
        Assert.True(ConnectFailure.TryGet(ForwarderError.Request,
            new HttpRequestException("x", new SocketException((int)SocketError.HostUnreachable)), out _));
        Assert.False(ConnectFailure.TryGet(ForwarderError.Request,
            new HttpRequestException("x", new SocketException((int)SocketError.ConnectionReset)), out _));
    }

    /// <summary>One GET through YARP's real forwarder, as the proxy pipeline's last step runs it.</summary>
    private static async Task<(ForwarderError Error, Exception? Exception)> ForwardAsync(string prefix, HttpMessageHandler handler)
    {
        await using var services = new ServiceCollection().AddLogging().AddHttpForwarder().BuildServiceProvider();
        var forwarder = services.GetRequiredService<IHttpForwarder>();
        var context = new DefaultHttpContext { RequestServices = services };
        context.Request.Method = "GET";
        context.Request.Path = "/chat/lobby";
        context.Response.Body = new MemoryStream();
        using var invoker = new HttpMessageInvoker(handler);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));

        var result = await forwarder.SendAsync(context, prefix, invoker, ForwarderRequestConfig.Empty, HttpTransformer.Default, timeout.Token);

        var feature = context.Features.Get<IForwarderErrorFeature>();
        Assert.NotNull(feature);
        Assert.Equal(result, feature.Error);
        Assert.False(context.Response.HasStarted);
        return (feature.Error, feature.Exception);
    }
}
