using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace Gateway.Relay;

/// <summary>RFC 6455 §5.2 framing facts, and the few control frames the gateway writes itself.</summary>
internal static class WebSocketFrame
{
    public const byte OpcodeContinuation = 0x0;
    public const byte OpcodeText = 0x1;
    public const byte OpcodeBinary = 0x2;
    public const byte OpcodeClose = 0x8;
    public const byte OpcodePing = 0x9;
    public const byte OpcodePong = 0xA;

    /// <summary>§5.2: RSV1, RSV2 and RSV3 in the first header byte; 0 unless a negotiated extension defines them.</summary>
    public const byte ReservedBits = 0x70;

    /// <summary>RSV1: permessage-deflate's "compressed" bit (RFC 7692 §6).</summary>
    public const byte Rsv1 = 0x40;

    /// <summary>§5.5: control frames carry at most 125 bytes of payload.</summary>
    public const int MaxControlPayload = 125;

    /// <summary>2 bytes, 8 of extended length, 4 of mask.</summary>
    public const int MaxHeaderLength = 14;

    /// <summary>The gateway's pings carry 8 bytes, so their pongs (§5.5.3: same payload) are recognisable.</summary>
    public const int PingPayloadLength = 8;

    /// <summary>Room for any control frame the gateway writes: header, code, short reason.</summary>
    public const int MaxControlFrameLength = 6 + MaxControlPayload;

    /// <summary>Writes a ping carrying <paramref name="payload"/>; masked toward a server (§5.3), unmasked toward a client.</summary>
    public static int WritePing(Span<byte> destination, ulong payload, bool masked)
    {
        Span<byte> body = stackalloc byte[PingPayloadLength];
        BinaryPrimitives.WriteUInt64BigEndian(body, payload);
        return WriteControl(destination, OpcodePing, body, masked);
    }

    /// <summary>Writes a Close frame (§5.5.1) with a status code and a reason cut to fit a control frame.</summary>
    public static int WriteClose(Span<byte> destination, ushort code, string reason, bool masked)
    {
        Span<byte> body = stackalloc byte[MaxControlPayload];
        BinaryPrimitives.WriteUInt16BigEndian(body, code);
        var length = 2 + Utf8Prefix(reason, body[2..]);
        return WriteControl(destination, OpcodeClose, body[..length], masked);
    }

    private static int WriteControl(Span<byte> destination, byte opcode, ReadOnlySpan<byte> payload, bool masked)
    {
        destination[0] = (byte)(0x80 | opcode); // FIN: control frames are never fragmented (§5.5)
        destination[1] = (byte)((masked ? 0x80 : 0) | payload.Length);
        var offset = 2;
        if (masked)
        {
            // §5.3: the masking key is fresh and unpredictable for every frame.
            Span<byte> key = destination.Slice(offset, 4);
            RandomNumberGenerator.Fill(key);
            offset += 4;
            for (var i = 0; i < payload.Length; i++)
            {
                destination[offset + i] = (byte)(payload[i] ^ key[i & 3]);
            }
        }
        else
        {
            payload.CopyTo(destination[offset..]);
        }
        return offset + payload.Length;
    }

    /// <summary>As many whole UTF-8 characters of <paramref name="text"/> as fit (§5.5.1: the reason is valid UTF-8).</summary>
    private static int Utf8Prefix(string text, Span<byte> destination)
    {
        Encoding.UTF8.GetEncoder().Convert(text.AsSpan(), destination[..Math.Min(destination.Length, MaxControlPayload - 2)], flush: true, out _, out var bytes, out _);
        return bytes;
    }
}
