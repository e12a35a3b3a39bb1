using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Gateway.Relay;
using Gateway.Tests.Infrastructure;
using Gateway.Tests.Relay;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Time.Testing;
using Xunit.Abstractions;

namespace Gateway.Tests.KeepAlive;

/// <summary>
/// An idle tunnel's keepalive allocates nothing: the sweep, the ping through the gate, its write, and the swallowed pong.
/// The gateway runs on real loopback sockets with a <see cref="FakeTimeProvider"/>; the peers are answered
/// synchronously on the test's thread, and what that thread allocates itself (the client's TLS) is subtracted from the
/// process's total, so the remainder is the gateway's (and the fake clock's).
/// </summary>
[Collection(SerialCollection.Name)]
public sealed class PingAllocationTests(ITestOutputHelper output)
{
    private const int Tunnels = 100;
    private const int WarmupRounds = 5;
    private const int Batches = 5;
    private const int RoundsPerBatch = 5; // 100 tunnels x 5 rounds x 2 peers = 1,000 pings a batch

    private readonly FakeTimeProvider _time = new(DateTimeOffset.UtcNow);

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_keepalive_ping_and_its_pong_allocate_nothing(bool tls)
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var backendAddress = new Uri($"http://127.0.0.1:{((IPEndPoint)listener.LocalEndpoint).Port}/");
        var config = RelayConfig.Build(backendAddress, RelayConfig.KeepAlive("00:00:30", "00:00:15"));
        // The certificate files' periodic check runs on the same clock and reads files: not part of keepalive.
        config["Gateway"]!["Tls"]!["CertificateCheckInterval"] = "00:00:00";
        await using var gateway = await GatewayServer.StartAsync(config, services => services.AddSingleton<TimeProvider>(_time));
        var clients = new List<Stream>();
        var backends = new List<Stream>();
        try
        {
            for (var i = 0; i < Tunnels; i++)
            {
                var backend = AcceptBackendAsync(listener);
                var client = ConnectClientAsync(tls ? gateway.Wss : gateway.Ws, tls);
                backends.Add(await backend.WaitAsync(TimeSpan.FromSeconds(10)));
                clients.Add(await client.WaitAsync(TimeSpan.FromSeconds(10)));
            }
            var sweeper = gateway.Services.GetRequiredService<KeepAliveSweeper>();
            // A client has its 101 a moment before its tunnel joins the sweep.
            await Retry.Eventually(() => Assert.Equal(Tunnels, sweeper.OpenTunnels), TimeSpan.FromSeconds(10));
            var tunnels = sweeper.Snapshot().ToArray();

            var ping = new byte[14];
            var pong = new byte[14];
            for (var round = 0; round < WarmupRounds; round++)
            {
                Round(clients, backends, tunnels, ping, pong);
            }

            // Batches of 1,000 pings; the process also runs work of its own on the wall clock (the configuration file's
            // poll), which lands in one batch or another: the quietest batch is the keepalive path's cost.
            var perPing = new List<double>();
            for (var batch = 0; batch < Batches; batch++)
            {
                var ownBytes = 0L;
                var before = GC.GetTotalAllocatedBytes(precise: true);
                for (var round = 0; round < RoundsPerBatch; round++)
                {
                    ownBytes += Round(clients, backends, tunnels, ping, pong);
                }
                var gatewayBytes = GC.GetTotalAllocatedBytes(precise: true) - before - ownBytes;
                perPing.Add((double)gatewayBytes / (Tunnels * RoundsPerBatch * 2));
            }
            output.WriteLine($"{(tls ? "wss" : "ws")}: B per ping in batches of {Tunnels * RoundsPerBatch * 2} pings: "
                + string.Join(", ", perPing.Select(b => b.ToString("F1", System.Globalization.CultureInfo.InvariantCulture))));
            Assert.True(perPing.Min() < 8, $"{perPing.Min():F1} B allocated per keepalive ping at best ({string.Join(", ", perPing)})");
        }
        finally
        {
            foreach (var stream in clients.Concat(backends))
            {
                stream.Dispose();
            }
        }
    }

    /// <summary>
    /// One interval passes: every tunnel pings both peers, each peer answers, and the round ends when the gateway has
    /// taken every pong. Returns what the test's thread allocated answering.
    /// </summary>
    private long Round(List<Stream> clients, List<Stream> backends, RelayTunnel[] tunnels, byte[] ping, byte[] pong)
    {
        _time.Advance(TimeSpan.FromSeconds(30));
        // Every ping is out before any peer answers: a pong arriving while the sweep is still on its way would make the
        // gate busy for the other peer's ping, which then waits for the next sweep.
        WaitFor(tunnels, outstanding: true);
        var start = GC.GetAllocatedBytesForCurrentThread();
        foreach (var client in clients)
        {
            // Unmasked toward the client (RFC 6455 §5.1): 2 header bytes and the 8-byte payload.
            client.ReadExactly(ping.AsSpan(0, 10));
            Assert.True(ping[0] == 0x89 && ping[1] == 8, "a ping with an 8-byte payload");
            pong[0] = 0x8A;
            pong[1] = 0x80 | 8;
            BinaryPrimitives.WriteInt32LittleEndian(pong.AsSpan(2), 0); // a zero mask: the payload as it is
            ping.AsSpan(2, 8).CopyTo(pong.AsSpan(6));
            client.Write(pong.AsSpan(0, 14));
        }
        foreach (var backend in backends)
        {
            // Masked toward the backend: the payload is unmasked before it is echoed.
            backend.ReadExactly(ping.AsSpan(0, 14));
            Assert.True(ping[0] == 0x89 && ping[1] == (0x80 | 8), "a masked ping with an 8-byte payload");
            pong[0] = 0x8A;
            pong[1] = 8;
            for (var i = 0; i < 8; i++)
            {
                pong[2 + i] = (byte)(ping[6 + i] ^ ping[2 + (i & 3)]);
            }
            backend.Write(pong.AsSpan(0, 10));
        }
        var own = GC.GetAllocatedBytesForCurrentThread() - start;
        WaitFor(tunnels, outstanding: false);
        return own;
    }

    /// <summary>Until every tunnel has a ping out to both peers, or none.</summary>
    private static void WaitFor(RelayTunnel[] tunnels, bool outstanding)
    {
        var deadline = Stopwatch.GetTimestamp() + Stopwatch.Frequency * 10;
        foreach (var tunnel in tunnels)
        {
            while (tunnel.PingOutstanding(backend: false) != outstanding || tunnel.PingOutstanding(backend: true) != outstanding)
            {
                Assert.True(Stopwatch.GetTimestamp() < deadline, outstanding ? "every tunnel pings both peers within 10 s" : "every pong is taken within 10 s");
                Thread.Yield();
            }
        }
    }

    private static async Task<Stream> ConnectClientAsync(Uri gateway, bool tls)
    {
        var tcp = new TcpClient { NoDelay = true };
        await tcp.ConnectAsync(gateway.Host, gateway.Port);
        tcp.Client.ReceiveTimeout = 10_000;
        Stream stream = tcp.GetStream();
        if (tls)
        {
            var ssl = new SslStream(stream, leaveInnerStreamOpen: false, (_, _, _, _) => true);
            await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "localhost" });
            stream = ssl;
        }
        var key = RawFrames.NewKey();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            $"GET /raw/idle HTTP/1.1\r\nHost: {gateway.Authority}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + $"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"));
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var head = await RawFrames.ReadHeadAsync(stream, timeout.Token);
        Assert.StartsWith("HTTP/1.1 101", head);
        return stream;
    }

    private static async Task<Stream> AcceptBackendAsync(TcpListener listener)
    {
        var tcp = await listener.AcceptTcpClientAsync();
        tcp.NoDelay = true;
        tcp.Client.ReceiveTimeout = 10_000;
        var stream = tcp.GetStream();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var head = await RawFrames.ReadHeadAsync(stream, timeout.Token);
        var key = head.Split("\r\n").First(l => l.StartsWith("Sec-WebSocket-Key:", StringComparison.OrdinalIgnoreCase))[18..].Trim();
        await stream.WriteAsync(Encoding.ASCII.GetBytes(
            $"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {RawFrames.AcceptFor(key)}\r\n\r\n"));
        return stream;
    }
}
