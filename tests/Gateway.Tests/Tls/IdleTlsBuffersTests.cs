using System.Collections.Concurrent;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text.Json.Nodes;
using Gateway.Tests.Infrastructure;
using Gateway.Tls;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core.Features;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Tests.Tls;

/// <summary>
/// <c>SSL_MODE_RELEASE_BUFFERS</c> on the gateway's TLS connections: set after the handshake (on by default), off when
/// configured so, and TLS still carries everything, in records of every size, both ways, after idle spells.
/// </summary>
public sealed class IdleTlsBuffersTests
{
    private const nint ReleaseBuffers = 0x10;

    [Fact]
    public async Task Release_mode_is_set_on_the_servers_connection_and_data_still_flows_both_ways()
    {
        Assert.True(OperatingSystem.IsLinux(), "these tests read OpenSSL's mode; SslStream uses OpenSSL on Linux only");
        Assert.Null(IdleTlsBuffers.Unavailable);
        using var certificates = new TestCertificates();
        await using var pair = await TlsPair.StartAsync(certificates);

        Assert.Equal(0, IdleTlsBuffers.ReadMode(pair.Server)!.Value & ReleaseBuffers);
        Assert.True(IdleTlsBuffers.TryRelease(pair.Server));
        Assert.Equal(ReleaseBuffers, IdleTlsBuffers.ReadMode(pair.Server)!.Value & ReleaseBuffers);
        Assert.Equal(0, IdleTlsBuffers.ReadMode(pair.Client)!.Value & ReleaseBuffers);

        // Sizes around a TLS record (16 KiB of plaintext) and across several, with pauses that leave the buffers empty.
        foreach (var size in new[] { 1, 125, 16_383, 16_384, 16_385, 100_000, 1 })
        {
            await Exchange(pair.Client, pair.Server, size);
            await Exchange(pair.Server, pair.Client, size);
            await Task.Delay(10);
        }
    }

    [Fact]
    public async Task A_handle_that_is_not_the_connections_own_is_refused_and_left_as_it_was()
    {
        // As if a runtime update moved the field and the lookup landed on another connection's SSL*: the server's
        // connection is checked against the client's handle (SSL_is_server says client), and the other way round.
        Assert.Null(IdleTlsBuffers.Unavailable);
        using var certificates = new TestCertificates();
        await using var pair = await TlsPair.StartAsync(certificates);

        Assert.False(IdleTlsBuffers.TryRelease(pair.Server, handleOf: pair.Client, out var refused));
        Assert.NotNull(refused);
        Assert.Contains("not this connection's", refused);
        Assert.False(IdleTlsBuffers.TryRelease(pair.Client, handleOf: pair.Server, out refused));
        Assert.NotNull(refused);
        Assert.Equal(0, IdleTlsBuffers.ReadMode(pair.Client)!.Value & ReleaseBuffers);
        Assert.Equal(0, IdleTlsBuffers.ReadMode(pair.Server)!.Value & ReleaseBuffers);

        // Its own handle agrees (server, the negotiated version), and the connection serves on either way.
        Assert.True(IdleTlsBuffers.TryRelease(pair.Server, handleOf: pair.Server, out refused));
        Assert.Null(refused);
        await Exchange(pair.Client, pair.Server, 20_000);
        await Exchange(pair.Server, pair.Client, 20_000);
    }

    [Fact]
    public async Task A_closed_connection_is_refused_without_an_error()
    {
        using var certificates = new TestCertificates();
        var pair = await TlsPair.StartAsync(certificates);
        await pair.DisposeAsync();

        Assert.False(IdleTlsBuffers.TryRelease(pair.Server));
        Assert.Null(IdleTlsBuffers.ReadMode(pair.Server));
    }

    [Theory]
    [InlineData(Transport.WssHttp11, true)]
    [InlineData(Transport.WssHttp2, true)]
    [InlineData(Transport.WssHttp11, false)]
    public async Task The_gateways_wss_connections_release_their_buffers_unless_configured_not_to(Transport transport, bool release)
    {
        using var certificates = new TestCertificates();
        await using var backend = await Backend.StartAsync("echo-1");
        var (certificate, key, _) = certificates.IssueServer("server", "localhost");
        var config = GatewayServer.Config(GatewayServer.Proxy([("echo", "/echo", "echo")], [("echo", [backend])]),
            [new JsonObject { ["Path"] = certificate, ["KeyPath"] = key }]);
        if (!release)
        {
            config["Gateway"]!["Tls"]!["ReleaseIdleBuffers"] = false;
        }
        var modes = new ConcurrentQueue<nint?>();
        await using var gateway = await GatewayServer.StartAsync(config,
            services => services.AddSingleton<IStartupFilter>(new ModeRecorder(modes)));

        using var socket = await WebSocketClient.ConnectAsync(gateway, transport, "/echo", certificates);
        var payload = new byte[200_000];
        Random.Shared.NextBytes(payload);
        for (var round = 0; round < 3; round++)
        {
            await WebSocketClient.SendAsync(socket, payload, WebSocketMessageType.Binary);
            var (_, echoed) = await WebSocketClient.ReceiveAsync(socket);
            Assert.Equal(payload, echoed);
            await Task.Delay(20);
        }
        Assert.Equal(WebSocketCloseStatus.NormalClosure, await WebSocketClient.CloseAsync(socket));

        var mode = Assert.Single(modes);
        Assert.NotNull(mode);
        Assert.Equal(release ? ReleaseBuffers : 0, mode.Value & ReleaseBuffers);
    }

    private static async Task Exchange(SslStream from, SslStream to, int size)
    {
        var sent = new byte[size];
        Random.Shared.NextBytes(sent);
        var received = new byte[size];
        await Task.WhenAll(from.WriteAsync(sent).AsTask(), to.ReadExactlyAsync(received).AsTask()).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(sent, received);
    }

    /// <summary>Records the OpenSSL mode of the TLS connection each request to <c>/echo</c> came over.</summary>
    private sealed class ModeRecorder(ConcurrentQueue<nint?> modes) : IStartupFilter
    {
        public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
        {
            app.Use((context, nextStep) =>
            {
                if (context.Request.Path.StartsWithSegments("/echo") && context.Features.Get<ISslStreamFeature>() is { } tls)
                {
                    modes.Enqueue(IdleTlsBuffers.ReadMode(tls.SslStream));
                }
                return nextStep(context);
            });
            next(app);
        };
    }

    /// <summary>A server and a client <see cref="SslStream"/> over a loopback TCP connection, handshake done.</summary>
    private sealed class TlsPair : IAsyncDisposable
    {
        private readonly TcpClient _client;
        private readonly TcpClient _server;

        private TlsPair(TcpClient client, TcpClient server, SslStream clientTls, SslStream serverTls)
        {
            _client = client;
            _server = server;
            Client = clientTls;
            Server = serverTls;
        }

        public SslStream Client { get; }

        public SslStream Server { get; }

        public static async Task<TlsPair> StartAsync(TestCertificates certificates)
        {
            var (certificatePath, keyPath, _) = certificates.IssueServer("server", "localhost");
            using var certificate = System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPemFile(certificatePath, keyPath);
            using var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            var client = new TcpClient();
            var connecting = client.ConnectAsync(IPAddress.Loopback, ((IPEndPoint)listener.LocalEndpoint).Port);
            var server = await listener.AcceptTcpClientAsync();
            await connecting;
            var serverTls = new SslStream(server.GetStream());
            var clientTls = new SslStream(client.GetStream(), false, (_, _, _, _) => true);
            await Task.WhenAll(
                serverTls.AuthenticateAsServerAsync(certificate),
                clientTls.AuthenticateAsClientAsync("localhost")).WaitAsync(TimeSpan.FromSeconds(10));
            return new TlsPair(client, server, clientTls, serverTls);
        }

        public async ValueTask DisposeAsync()
        {
            await Client.DisposeAsync();
            await Server.DisposeAsync();
            _client.Dispose();
            _server.Dispose();
        }
    }
}
