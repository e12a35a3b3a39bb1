using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Text;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Listeners;

/// <summary>
/// A client as an L4 balancer delivers it: a raw TCP connection that starts with a PROXY header, then (on wss) TLS
/// over the same socket, then an HTTP/1.1 WebSocket handshake and frames written by the test.
/// </summary>
public sealed class ProxiedClient : IAsyncDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private readonly TcpClient _tcp;

    private ProxiedClient(TcpClient tcp, Stream stream)
    {
        _tcp = tcp;
        Stream = stream;
    }

    public Stream Stream { get; private set; }

    /// <summary>
    /// Connects to <paramref name="listener"/> (from <paramref name="from"/>, another loopback address, when given) and
    /// sends <paramref name="header"/>, <paramref name="chunk"/> bytes per TCP write.
    /// </summary>
    public static async Task<ProxiedClient> ConnectAsync(Uri listener, byte[] header, int chunk = int.MaxValue, IPAddress? from = null)
    {
        var tcp = from is null ? new TcpClient() : new TcpClient(new IPEndPoint(from, 0));
        tcp.NoDelay = true;
        using var timeout = new CancellationTokenSource(Timeout);
        await tcp.ConnectAsync(listener.Host, listener.Port, timeout.Token);
        var client = new ProxiedClient(tcp, tcp.GetStream());
        try
        {
            if (header.Length > 0)
            {
                await RawFrames.WriteChunkedAsync(client.Stream, header, Math.Max(1, Math.Min(chunk, header.Length)), timeout.Token);
            }
            if (listener.Scheme == "wss")
            {
                await client.StartTlsAsync();
            }
            return client;
        }
        catch
        {
            await client.DisposeAsync();
            throw;
        }
    }

    /// <summary>TLS over the same socket, after the header; any server certificate (the test gateway's self-signed one) is accepted.</summary>
    public async Task StartTlsAsync()
    {
        var tls = new SslStream(Stream, leaveInnerStreamOpen: false, (_, _, _, _) => true);
        using var timeout = new CancellationTokenSource(Timeout);
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "localhost",
            ApplicationProtocols = [SslApplicationProtocol.Http11],
        }, timeout.Token);
        Stream = tls;
    }

    /// <summary>The handshake's response head, once <see cref="HandshakeAsync"/> has returned.</summary>
    public string? Response { get; private set; }

    /// <summary>Sends a WebSocket handshake for <paramref name="path"/> (with <paramref name="headers"/>, "Name: value" each); returns the response's status code.</summary>
    public async Task<int> HandshakeAsync(string path, params string[] headers)
    {
        using var timeout = new CancellationTokenSource(Timeout);
        var key = RawFrames.NewKey();
        var extra = string.Concat(headers.Select(h => h + "\r\n"));
        var request = $"GET {path} HTTP/1.1\r\nHost: gateway.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
                      $"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n";
        await Stream.WriteAsync(Encoding.ASCII.GetBytes(request), timeout.Token);
        await Stream.FlushAsync(timeout.Token);
        var head = await RawFrames.ReadHeadAsync(Stream, timeout.Token);
        Response = head;
        var status = int.Parse(head.Split(' ', 3)[1], System.Globalization.CultureInfo.InvariantCulture);
        if (status == 101)
        {
            Assert.Contains($"Sec-WebSocket-Accept: {RawFrames.AcceptFor(key)}", head, StringComparison.OrdinalIgnoreCase);
        }
        return status;
    }

    /// <summary>Sends a text message and returns the backend's echo of it.</summary>
    public async Task<string> EchoAsync(string text)
    {
        using var timeout = new CancellationTokenSource(Timeout);
        await Stream.WriteAsync(RawFrames.Encode(RawFrame.Text, Encoding.UTF8.GetBytes(text)), timeout.Token);
        await Stream.FlushAsync(timeout.Token);
        var frame = await RawFrames.ReadAsync(Stream, expectMasked: false, timeout.Token);
        Assert.Equal(RawFrame.Text, frame.Opcode);
        return Encoding.UTF8.GetString(frame.Payload);
    }

    /// <summary>Sends <paramref name="bytes"/> as they are.</summary>
    public async Task WriteAsync(byte[] bytes)
    {
        using var timeout = new CancellationTokenSource(Timeout);
        await Stream.WriteAsync(bytes, timeout.Token);
        await Stream.FlushAsync(timeout.Token);
    }

    /// <summary>Waits (bounded) until the gateway closes the connection; returns how many bytes it sent first.</summary>
    public async Task<int> ReadUntilClosedAsync()
    {
        using var timeout = new CancellationTokenSource(Timeout);
        var buffer = new byte[4096];
        var total = 0;
        try
        {
            int read;
            while ((read = await Stream.ReadAsync(buffer, timeout.Token)) > 0)
            {
                total += read;
            }
        }
        catch (IOException)
        {
            // A reset is a close too.
        }
        return total;
    }

    public async ValueTask DisposeAsync()
    {
        await Stream.DisposeAsync();
        _tcp.Dispose();
    }
}
