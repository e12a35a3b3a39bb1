using System.Buffers;
using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace EchoServer;

/// <summary>
/// A WebSocket echo backend for the benchmark: raw sockets and a minimal RFC 6455 server codec, no HTTP stack.
/// Each data frame is echoed back as it came (same opcode and FIN bit, unmasked); pings get pongs, a close gets a
/// close and the server then closes the TCP connection (so TIME_WAIT stays on the server side). While a connection
/// is idle it holds no buffer (zero-byte receive), so the "direct" idle row shows the backend's own floor.
/// </summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        var address = IPAddress.Loopback;
        var port = 9000;
        var backlog = 4096;
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--address": address = IPAddress.Parse(args[i + 1]); break;
                case "--port": port = int.Parse(args[i + 1]); break;
                case "--backlog": backlog = int.Parse(args[i + 1]); break;
                default:
                    Console.Error.WriteLine($"echoserver: unknown option {args[i]} (expected --address, --port, --backlog)");
                    return 2;
            }
        }

        using var listener = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        listener.Bind(new IPEndPoint(address, port));
        listener.Listen(backlog);
        Console.WriteLine($"echoserver: listening on {address}:{port} (pid {Environment.ProcessId})");

        using var stop = new CancellationTokenSource();
        Console.CancelKeyPress += (_, e) => { e.Cancel = true; stop.Cancel(); };
        AppDomain.CurrentDomain.ProcessExit += (_, _) => stop.Cancel();

        // Two accept loops keep up with bursts of thousands of connections on 2 cores.
        var loops = new Task[2];
        for (var i = 0; i < loops.Length; i++)
        {
            loops[i] = AcceptLoop(listener, stop.Token);
        }
        try
        {
            await Task.WhenAll(loops);
        }
        catch (OperationCanceledException)
        {
        }
        return 0;
    }

    private static async Task AcceptLoop(Socket listener, CancellationToken ct)
    {
        while (!ct.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptAsync(ct);
            }
            catch (SocketException)
            {
                continue; // EMFILE and friends: keep serving the connections we have.
            }
            socket.NoDelay = true;
            _ = new Connection(socket).RunAsync();
        }
    }
}

internal sealed class Connection
{
    private const int BufferSize = 16 * 1024;
    private static readonly byte[] AcceptGuid = Encoding.ASCII.GetBytes("258EAFA5-E914-47DA-95CA-C5AB0DC85B11");

    private readonly Socket _socket;
    private byte[]? _buffer;
    private int _start;
    private int _end;

    public Connection(Socket socket) => _socket = socket;

    public async Task RunAsync()
    {
        try
        {
            if (!await HandshakeAsync())
            {
                return;
            }
            await RelayAsync();
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException or InvalidDataException)
        {
        }
        finally
        {
            if (_buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(_buffer);
                _buffer = null;
            }
            _socket.Dispose();
        }
    }

    private async ValueTask<bool> HandshakeAsync()
    {
        _buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
        int headEnd;
        while ((headEnd = IndexOfHeadEnd(_buffer.AsSpan(0, _end))) < 0)
        {
            if (_end == _buffer.Length)
            {
                return false;
            }
            var n = await _socket.ReceiveAsync(_buffer.AsMemory(_end), SocketFlags.None);
            if (n == 0)
            {
                return false;
            }
            _end += n;
        }
        var head = Encoding.ASCII.GetString(_buffer, 0, headEnd);
        _start = headEnd + 4;
        string? key = null;
        foreach (var line in head.Split("\r\n"))
        {
            var colon = line.IndexOf(':');
            if (colon > 0 && line.AsSpan(0, colon).Trim().Equals("Sec-WebSocket-Key", StringComparison.OrdinalIgnoreCase))
            {
                key = line[(colon + 1)..].Trim();
            }
        }
        if (key is null)
        {
            await _socket.SendAsync("HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"u8.ToArray(), SocketFlags.None);
            return false;
        }
        var keyBytes = Encoding.ASCII.GetBytes(key);
        var input = new byte[keyBytes.Length + AcceptGuid.Length];
        keyBytes.CopyTo(input, 0);
        AcceptGuid.CopyTo(input, keyBytes.Length);
        var accept = Convert.ToBase64String(SHA1.HashData(input));
        var response = Encoding.ASCII.GetBytes(
            $"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n");
        await _socket.SendAsync(response, SocketFlags.None);
        return true;
    }

    private static int IndexOfHeadEnd(ReadOnlySpan<byte> data) => data.IndexOf("\r\n\r\n"u8);

    private async Task RelayAsync()
    {
        while (true)
        {
            // Echo every complete frame in the buffer with one send.
            var closing = false;
            byte[]? output = null;
            var outLength = 0;
            while (TryParse(out var fin, out var opcode, out var payloadOffset, out var payloadLength, out var frameLength))
            {
                var payload = _buffer.AsSpan(payloadOffset, payloadLength);
                byte replyOpcode;
                switch (opcode)
                {
                    case 0x9: replyOpcode = 0xA; break;          // ping -> pong
                    case 0xA: replyOpcode = 0; break;            // unsolicited pong: ignore
                    case 0x8: replyOpcode = 0x8; closing = true; break;
                    default: replyOpcode = opcode; break;        // text, binary, continuation: echo
                }
                if (replyOpcode != 0 || opcode == 0x0)
                {
                    var needed = outLength + payloadLength + 10;
                    if (output is null || output.Length < needed)
                    {
                        var grown = ArrayPool<byte>.Shared.Rent(Math.Max(needed, BufferSize));
                        if (output is not null)
                        {
                            output.AsSpan(0, outLength).CopyTo(grown);
                            ArrayPool<byte>.Shared.Return(output);
                        }
                        output = grown;
                    }
                    outLength += WriteFrame(output.AsSpan(outLength), fin || opcode >= 0x8, replyOpcode, payload);
                }
                _start += frameLength;
                if (closing)
                {
                    break;
                }
            }
            if (output is not null)
            {
                try
                {
                    var sent = 0;
                    while (sent < outLength)
                    {
                        sent += await _socket.SendAsync(output.AsMemory(sent, outLength - sent), SocketFlags.None);
                    }
                }
                finally
                {
                    ArrayPool<byte>.Shared.Return(output);
                }
            }
            if (closing)
            {
                _socket.Shutdown(SocketShutdown.Both);
                return;
            }

            // Compact; give the buffer back while idle and wait with a zero-byte receive.
            if (_start == _end)
            {
                _start = _end = 0;
                if (_buffer is not null)
                {
                    ArrayPool<byte>.Shared.Return(_buffer);
                    _buffer = null;
                }
                await _socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None);
                _buffer = ArrayPool<byte>.Shared.Rent(BufferSize);
            }
            else if (_start > 0)
            {
                _buffer.AsSpan(_start, _end - _start).CopyTo(_buffer);
                _end -= _start;
                _start = 0;
            }
            if (_end == _buffer!.Length)
            {
                var grown = ArrayPool<byte>.Shared.Rent(_buffer.Length * 2);
                _buffer.AsSpan(0, _end).CopyTo(grown);
                ArrayPool<byte>.Shared.Return(_buffer);
                _buffer = grown;
            }
            var n = await _socket.ReceiveAsync(_buffer.AsMemory(_end), SocketFlags.None);
            if (n == 0)
            {
                return;
            }
            _end += n;
        }
    }

    /// <summary>Parses one complete client frame at _start and unmasks its payload in place.</summary>
    private bool TryParse(out bool fin, out byte opcode, out int payloadOffset, out int payloadLength, out int frameLength)
    {
        fin = false; opcode = 0; payloadOffset = 0; payloadLength = 0; frameLength = 0;
        var data = _buffer.AsSpan(_start, _end - _start);
        if (data.Length < 2)
        {
            return false;
        }
        fin = (data[0] & 0x80) != 0;
        opcode = (byte)(data[0] & 0x0F);
        var masked = (data[1] & 0x80) != 0;
        long length = data[1] & 0x7F;
        var header = 2;
        if (length == 126)
        {
            if (data.Length < 4) return false;
            length = BinaryPrimitives.ReadUInt16BigEndian(data[2..]);
            header = 4;
        }
        else if (length == 127)
        {
            if (data.Length < 10) return false;
            length = (long)BinaryPrimitives.ReadUInt64BigEndian(data[2..]);
            header = 10;
        }
        if (length > 64 * 1024 * 1024)
        {
            throw new InvalidDataException("frame too large for the echo server");
        }
        var maskOffset = header;
        if (masked)
        {
            header += 4;
        }
        if (data.Length < header + length)
        {
            return false;
        }
        payloadOffset = _start + header;
        payloadLength = (int)length;
        frameLength = header + payloadLength;
        if (masked)
        {
            var mask = data.Slice(maskOffset, 4);
            var payload = data.Slice(header, payloadLength);
            for (var i = 0; i < payload.Length; i++)
            {
                payload[i] ^= mask[i & 3];
            }
        }
        return true;
    }

    private static int WriteFrame(Span<byte> dst, bool fin, byte opcode, ReadOnlySpan<byte> payload)
    {
        dst[0] = (byte)((fin ? 0x80 : 0) | opcode);
        int header;
        if (payload.Length < 126)
        {
            dst[1] = (byte)payload.Length;
            header = 2;
        }
        else if (payload.Length <= ushort.MaxValue)
        {
            dst[1] = 126;
            BinaryPrimitives.WriteUInt16BigEndian(dst[2..], (ushort)payload.Length);
            header = 4;
        }
        else
        {
            dst[1] = 127;
            BinaryPrimitives.WriteUInt64BigEndian(dst[2..], (ulong)payload.Length);
            header = 10;
        }
        payload.CopyTo(dst[header..]);
        return header + payload.Length;
    }
}
