using System.Buffers.Binary;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace Gateway.Tests.Infrastructure;

/// <summary>One WebSocket frame as it travelled on the wire.</summary>
public sealed record RawFrame(bool Fin, int Rsv, byte Opcode, bool Masked, byte[] Payload)
{
    public const byte Continuation = 0x0, Text = 0x1, Binary = 0x2, Close = 0x8, Ping = 0x9, Pong = 0xA;

    public ushort CloseCode => Payload.Length >= 2 ? BinaryPrimitives.ReadUInt16BigEndian(Payload) : (ushort)0;

    public string CloseReason => Payload.Length > 2 ? Encoding.UTF8.GetString(Payload, 2, Payload.Length - 2) : string.Empty;

    public override string ToString() => $"{(Fin ? "FIN " : "")}op={Opcode} rsv={Rsv} len={Payload.Length}";
}

/// <summary>
/// Frame codec for test peers that must send what a polite client would not (unmasked frames, oversize control
/// frames, one byte per TCP write) and see exactly what arrives.
/// </summary>
public static class RawFrames
{
    public static byte[] Encode(byte opcode, ReadOnlySpan<byte> payload, bool fin = true, bool mask = true, int rsv = 0)
    {
        var length = payload.Length;
        var extended = length < 126 ? 0 : length <= ushort.MaxValue ? 2 : 8;
        var frame = new byte[2 + extended + (mask ? 4 : 0) + length];
        frame[0] = (byte)((fin ? 0x80 : 0) | (rsv << 4) | opcode);
        frame[1] = (byte)((mask ? 0x80 : 0) | (extended == 0 ? length : extended == 2 ? 126 : 127));
        var offset = 2;
        if (extended == 2)
        {
            BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(offset), (ushort)length);
        }
        else if (extended == 8)
        {
            BinaryPrimitives.WriteUInt64BigEndian(frame.AsSpan(offset), (ulong)length);
        }
        offset += extended;
        if (mask)
        {
            var key = RandomNumberGenerator.GetBytes(4);
            key.CopyTo(frame, offset);
            offset += 4;
            for (var i = 0; i < length; i++)
            {
                frame[offset + i] = (byte)(payload[i] ^ key[i & 3]);
            }
        }
        else
        {
            payload.CopyTo(frame.AsSpan(offset));
        }
        return frame;
    }

    public static byte[] CloseFrame(ushort code, string reason = "", bool mask = true)
    {
        var body = new byte[2 + Encoding.UTF8.GetByteCount(reason)];
        BinaryPrimitives.WriteUInt16BigEndian(body, code);
        Encoding.UTF8.GetBytes(reason, body.AsSpan(2));
        return Encode(RawFrame.Close, body, mask: mask);
    }

    /// <summary>Reads exactly one frame; throws on a frame whose masking breaks RFC 6455 §5.1 for the expected sender.</summary>
    public static async Task<RawFrame> ReadAsync(Stream stream, bool expectMasked, CancellationToken cancellationToken)
    {
        var header = new byte[14];
        await stream.ReadExactlyAsync(header.AsMemory(0, 2), cancellationToken);
        var fin = (header[0] & 0x80) != 0;
        var rsv = (header[0] >> 4) & 0x7;
        var opcode = (byte)(header[0] & 0x0F);
        var masked = (header[1] & 0x80) != 0;
        if (masked != expectMasked)
        {
            throw new InvalidDataException($"frame masking is {masked}, expected {expectMasked} (first bytes {header[0]:X2} {header[1]:X2})");
        }
        long length = header[1] & 0x7F;
        if (length == 126)
        {
            await stream.ReadExactlyAsync(header.AsMemory(2, 2), cancellationToken);
            length = BinaryPrimitives.ReadUInt16BigEndian(header.AsSpan(2));
        }
        else if (length == 127)
        {
            await stream.ReadExactlyAsync(header.AsMemory(2, 8), cancellationToken);
            length = (long)BinaryPrimitives.ReadUInt64BigEndian(header.AsSpan(2));
        }
        if ((opcode & 0x8) != 0 && (length > 125 || !fin))
        {
            throw new InvalidDataException($"malformed control frame op={opcode} len={length} fin={fin}");
        }
        if (opcode is > 0x2 and < 0x8 or > 0xA)
        {
            throw new InvalidDataException($"unknown opcode {opcode}: the stream is out of step");
        }
        var key = new byte[4];
        if (masked)
        {
            await stream.ReadExactlyAsync(key, cancellationToken);
        }
        var payload = new byte[length];
        await stream.ReadExactlyAsync(payload, cancellationToken);
        if (masked)
        {
            for (var i = 0; i < payload.Length; i++)
            {
                payload[i] ^= key[i & 3];
            }
        }
        return new RawFrame(fin, rsv, opcode, masked, payload);
    }

    /// <summary>Writes <paramref name="bytes"/> in pieces of <paramref name="chunk"/> bytes, each its own TCP write.</summary>
    public static async Task WriteChunkedAsync(Stream stream, byte[] bytes, int chunk, CancellationToken cancellationToken)
    {
        for (var offset = 0; offset < bytes.Length; offset += chunk)
        {
            await stream.WriteAsync(bytes.AsMemory(offset, Math.Min(chunk, bytes.Length - offset)), cancellationToken);
            await stream.FlushAsync(cancellationToken);
        }
    }

    public static string NewKey() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(16));

    public static string AcceptFor(string key) =>
        Convert.ToBase64String(SHA1.HashData(Encoding.ASCII.GetBytes(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")));

    /// <summary>Reads an HTTP head (request or response) up to the blank line.</summary>
    public static async Task<string> ReadHeadAsync(Stream stream, CancellationToken cancellationToken)
    {
        var head = new List<byte>(512);
        var one = new byte[1];
        while (head.Count < 16384)
        {
            if (await stream.ReadAsync(one, cancellationToken) == 0)
            {
                throw new EndOfStreamException("connection closed during the HTTP head");
            }
            head.Add(one[0]);
            var n = head.Count;
            if (n >= 4 && head[n - 4] == '\r' && head[n - 3] == '\n' && head[n - 2] == '\r' && head[n - 1] == '\n')
            {
                return Encoding.ASCII.GetString(head.ToArray());
            }
        }
        throw new InvalidDataException("HTTP head too long");
    }

    public static void NoDelay(TcpClient client) => client.NoDelay = true;
}
