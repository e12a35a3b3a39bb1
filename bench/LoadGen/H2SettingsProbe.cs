using System.Buffers.Binary;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;

namespace LoadGen;

/// <summary>
/// What a server says about HTTP/2 before any request: one TLS connection offering ALPN h2 only, the client preface
/// and an empty SETTINGS frame, then the server's first SETTINGS frame read (RFC 9113 §3.4, §6.5). It tells whether
/// the server can carry WebSockets over HTTP/2 at all (SETTINGS_ENABLE_CONNECT_PROTOCOL = 1, RFC 8441 §3) and how many
/// streams it allows per connection (SETTINGS_MAX_CONCURRENT_STREAMS), which decides how many connections the
/// tunnels need. ClientWebSocket reports neither.
/// </summary>
public sealed class H2SettingsProbe
{
    private const ushort MaxConcurrentStreams = 0x3;
    private const ushort EnableConnectProtocol = 0x8;
    private const byte SettingsFrame = 0x4;
    private const byte AckFlag = 0x1;

    /// <summary>The protocol the server chose in ALPN ("" when none).</summary>
    public string Alpn { get; private init; } = "";

    /// <summary>SETTINGS_MAX_CONCURRENT_STREAMS, or -1 when absent (no limit, RFC 9113 §6.5.2).</summary>
    public long MaxStreams { get; private init; } = -1;

    public bool ConnectProtocol { get; private init; }

    public bool CanTunnel => Alpn == "h2" && ConnectProtocol;

    public string Describe() => Alpn != "h2"
        ? $"the server did not accept ALPN h2 (chose '{Alpn}')"
        : $"SETTINGS_MAX_CONCURRENT_STREAMS={(MaxStreams < 0 ? "none" : MaxStreams)}, SETTINGS_ENABLE_CONNECT_PROTOCOL={(ConnectProtocol ? 1 : 0)}";

    public static async Task<H2SettingsProbe> RunAsync(Target target, CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(10));
        using var socket = new Socket(target.Address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(new IPEndPoint(target.Address, target.Port), timeout.Token);
        await using var ssl = new SslStream(new NetworkStream(socket, ownsSocket: false));
        var options = target.ClientOptions();
        options.ApplicationProtocols = [SslApplicationProtocol.Http2];
        await ssl.AuthenticateAsClientAsync(options, timeout.Token);
        var alpn = ssl.NegotiatedApplicationProtocol.ToString();
        if (alpn != "h2")
        {
            return new H2SettingsProbe { Alpn = alpn };
        }

        var hello = new byte[24 + 9];
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"u8.CopyTo(hello);
        hello[24 + 3] = SettingsFrame; // length 0, no flags, stream 0
        await ssl.WriteAsync(hello, timeout.Token);

        // The server's preface is a SETTINGS frame, first (RFC 9113 §3.4); it may be followed by others (WINDOW_UPDATE).
        var header = new byte[9];
        while (true)
        {
            await ssl.ReadExactlyAsync(header, timeout.Token);
            var length = (header[0] << 16) | (header[1] << 8) | header[2];
            if (length > 1 << 20)
            {
                throw new InvalidDataException($"HTTP/2 frame of {length} bytes in the server preface");
            }
            var payload = new byte[length];
            await ssl.ReadExactlyAsync(payload, timeout.Token);
            if (header[3] != SettingsFrame || (header[4] & AckFlag) != 0)
            {
                continue;
            }
            long maxStreams = -1;
            var connect = false;
            for (var i = 0; i + 6 <= payload.Length; i += 6)
            {
                var id = BinaryPrimitives.ReadUInt16BigEndian(payload.AsSpan(i));
                var value = BinaryPrimitives.ReadUInt32BigEndian(payload.AsSpan(i + 2));
                if (id == MaxConcurrentStreams)
                {
                    maxStreams = value;
                }
                else if (id == EnableConnectProtocol)
                {
                    connect = value == 1;
                }
            }
            return new H2SettingsProbe { Alpn = alpn, MaxStreams = maxStreams, ConnectProtocol = connect };
        }
    }
}
