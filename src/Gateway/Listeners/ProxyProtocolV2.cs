using System.Buffers.Binary;
using System.Net;
using System.Numerics;

namespace Gateway.Listeners;

/// <summary>
/// The binary header (section 2.2 of the PROXY protocol specification): a 12-byte signature, version and command,
/// family and transport, the length of what follows, the addresses, then TLVs. Addresses are used for TCP over IPv4
/// and IPv6; the other valid families fall back to the connection's own addresses, as the specification allows a
/// receiver that does not implement them to.
/// </summary>
internal static class ProxyProtocolV2
{
    public const int FixedLength = 16;

    /// <summary>
    /// The largest address block and TLVs accepted. Real senders stay far below: AWS NLB's VPC endpoint TLV, HAProxy's
    /// SSL, authority (SNI, at most 255) and unique-id (at most 128) TLVs together come to well under 1 KiB; the
    /// specification sizes headers to fit one 536-byte segment. The field itself allows 64 KiB.
    /// </summary>
    public const int MaxBlockLength = 2048;

    public static ReadOnlySpan<byte> Signature => [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];

    /// <summary>A whole v2 header with the LOCAL command and no addresses: what a sender's own connection (a health check) opens with.</summary>
    public static ReadOnlySpan<byte> LocalHeader => [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A, 0x20, 0x00, 0x00, 0x00];

    private const int CommandLocal = 0x0;
    private const int CommandProxy = 0x1;
    private const int FamilyUnspecified = 0x0;
    private const int FamilyInet = 0x1;
    private const int FamilyInet6 = 0x2;
    private const int FamilyUnix = 0x3;
    private const int TransportStream = 0x1;
    private const int TransportDatagram = 0x2;
    private const byte TlvCrc32C = 0x03;

    /// <summary>Parses <paramref name="data"/>, which begins with (as much as has arrived of) <see cref="Signature"/>.</summary>
    public static ProxyParseResult Parse(ReadOnlySpan<byte> data)
    {
        if (data.Length < FixedLength)
        {
            return ProxyParseResult.Incomplete(FixedLength);
        }
        var versionCommand = data[12];
        if (versionCommand >> 4 != 2)
        {
            return Malformed("v2: a version other than 2");
        }
        var command = versionCommand & 0x0F;
        if (command is not CommandLocal and not CommandProxy)
        {
            return Malformed("v2: a command other than LOCAL or PROXY");
        }
        var family = data[13] >> 4;
        var transport = data[13] & 0x0F;
        if (family > FamilyUnix || transport > TransportDatagram)
        {
            return Malformed("v2: an address family or transport the specification does not define");
        }
        var blockLength = BinaryPrimitives.ReadUInt16BigEndian(data[14..]);
        if (blockLength > MaxBlockLength)
        {
            return ProxyParseResult.Reject(ProxyProtocolRejection.Oversized, "v2: addresses and TLVs longer than 2048 bytes");
        }
        var length = FixedLength + blockLength;
        if (data.Length < length)
        {
            return ProxyParseResult.Incomplete(length);
        }
        var header = data[..length];

        if (command == CommandLocal)
        {
            // The balancer's own connection: "the receiver must accept this connection as valid and must use the real
            // connection endpoints and discard the protocol block including the family".
            return ProxyParseResult.Complete(length, new ProxyHeader(2, local: true, null, null));
        }
        if (family == FamilyUnspecified)
        {
            // Nothing known about the block's layout: its contents are ignored, as the specification says.
            return ProxyParseResult.Complete(length, new ProxyHeader(2, local: false, null, null));
        }

        var addressLength = family switch
        {
            FamilyInet => 12,
            FamilyInet6 => 36,
            _ => 216,
        };
        if (blockLength < addressLength)
        {
            return Malformed("v2: an address block shorter than its family needs");
        }
        if (CheckTlvs(header, FixedLength + addressLength) is { } tlvProblem)
        {
            return Malformed(tlvProblem);
        }
        if (transport != TransportStream || family == FamilyUnix)
        {
            return ProxyParseResult.Complete(length, new ProxyHeader(2, local: false, null, null));
        }

        var addresses = header[FixedLength..];
        var size = family == FamilyInet ? 4 : 16;
        var source = new IPAddress(addresses[..size]);
        var destination = new IPAddress(addresses.Slice(size, size));
        var sourcePort = BinaryPrimitives.ReadUInt16BigEndian(addresses[(2 * size)..]);
        var destinationPort = BinaryPrimitives.ReadUInt16BigEndian(addresses[(2 * size + 2)..]);
        return ProxyParseResult.Complete(length, new ProxyHeader(2, local: false, new IPEndPoint(source, sourcePort), new IPEndPoint(destination, destinationPort)));
    }

    /// <summary>
    /// Walks the TLVs after the addresses (type, 16-bit length, value), which must fill the header exactly, and checks
    /// a CRC32c TLV when there is one (section 2.2.3: a receiver that supports it must). Null when all is well.
    /// </summary>
    private static string? CheckTlvs(ReadOnlySpan<byte> header, int offset)
    {
        while (offset < header.Length)
        {
            if (header.Length - offset < 3)
            {
                return "v2: a TLV cut short by the header's end";
            }
            var type = header[offset];
            var valueLength = BinaryPrimitives.ReadUInt16BigEndian(header[(offset + 1)..]);
            var valueOffset = offset + 3;
            if (valueLength > header.Length - valueOffset)
            {
                return "v2: a TLV longer than the header";
            }
            if (type == TlvCrc32C)
            {
                if (valueLength != 4)
                {
                    return "v2: a CRC32c TLV whose value is not 4 bytes";
                }
                if (Crc32C(header, valueOffset) != BinaryPrimitives.ReadUInt32BigEndian(header[valueOffset..]))
                {
                    return "v2: a CRC32c that does not match the header";
                }
            }
            offset = valueOffset + valueLength;
        }
        return null;
    }

    /// <summary>CRC32c (RFC 4960 appendix B) of the header with the 4 checksum bytes at <paramref name="checksumOffset"/> taken as zeros.</summary>
    internal static uint Crc32C(ReadOnlySpan<byte> header, int checksumOffset)
    {
        var crc = Crc32C(uint.MaxValue, header[..checksumOffset]);
        crc = BitOperations.Crc32C(crc, 0u);
        crc = Crc32C(crc, header[(checksumOffset + 4)..]);
        return ~crc;
    }

    /// <summary>The CRC32c register after <paramref name="bytes"/> (no initial or final inversion); the hardware instruction where there is one.</summary>
    internal static uint Crc32C(uint crc, ReadOnlySpan<byte> bytes)
    {
        while (bytes.Length >= 8)
        {
            crc = BitOperations.Crc32C(crc, BinaryPrimitives.ReadUInt64LittleEndian(bytes));
            bytes = bytes[8..];
        }
        foreach (var b in bytes)
        {
            crc = BitOperations.Crc32C(crc, b);
        }
        return crc;
    }

    private static ProxyParseResult Malformed(string detail) => ProxyParseResult.Reject(ProxyProtocolRejection.Malformed, detail);
}
