using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Gateway.Tests.Listeners;

/// <summary>PROXY protocol headers as balancers write them, built by the test (HAProxy's "The PROXY protocol", v1 and v2).</summary>
public static class ProxyHeaders
{
    public static readonly byte[] V2Signature = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];

    /// <summary>A v1 line: <c>PROXY TCP4|TCP6 source destination sport dport\r\n</c>, the family taken from the source.</summary>
    public static byte[] V1(IPEndPoint source, IPEndPoint destination)
    {
        var protocol = source.AddressFamily == AddressFamily.InterNetwork ? "TCP4" : "TCP6";
        return Encoding.ASCII.GetBytes($"PROXY {protocol} {source.Address} {destination.Address} {source.Port} {destination.Port}\r\n");
    }

    public static byte[] V1(string source, int sourcePort, string destination = "192.0.2.100", int destinationPort = 443) =>
        V1(new IPEndPoint(IPAddress.Parse(source), sourcePort), new IPEndPoint(IPAddress.Parse(destination), destinationPort));

    /// <summary>A v2 PROXY header for TCP (family from the source) with <paramref name="tlvs"/> after the addresses.</summary>
    public static byte[] V2(IPEndPoint source, IPEndPoint destination, params (byte Type, byte[] Value)[] tlvs)
    {
        var v4 = source.AddressFamily == AddressFamily.InterNetwork;
        var addresses = new List<byte>();
        addresses.AddRange(source.Address.GetAddressBytes());
        addresses.AddRange(destination.Address.GetAddressBytes());
        addresses.AddRange(Port(source.Port));
        addresses.AddRange(Port(destination.Port));
        return V2Raw(command: 1, family: v4 ? 1 : 2, transport: 1, [.. addresses, .. Tlvs(tlvs)]);
    }

    public static byte[] V2(string source, int sourcePort, string destination = "192.0.2.100", int destinationPort = 443, params (byte Type, byte[] Value)[] tlvs) =>
        V2(new IPEndPoint(IPAddress.Parse(source), sourcePort), new IPEndPoint(IPAddress.Parse(destination), destinationPort), tlvs);

    /// <summary>A v2 LOCAL header (a balancer's health check), with an address block the receiver must skip.</summary>
    public static byte[] V2Local(byte[]? block = null) => V2Raw(command: 0, family: block is null ? 0 : 1, transport: block is null ? 0 : 1, block ?? []);

    /// <summary>Any v2 header: version 2, the given command, family and transport, and <paramref name="block"/> as its body.</summary>
    public static byte[] V2Raw(int command, int family, int transport, byte[] block, int version = 2)
    {
        var header = new byte[16 + block.Length];
        V2Signature.CopyTo(header, 0);
        header[12] = (byte)(version << 4 | command);
        header[13] = (byte)(family << 4 | transport);
        BinaryPrimitives.WriteUInt16BigEndian(header.AsSpan(14), (ushort)block.Length);
        block.CopyTo(header, 16);
        return header;
    }

    public static byte[] Tlvs(params (byte Type, byte[] Value)[] tlvs)
    {
        var bytes = new List<byte>();
        foreach (var (type, value) in tlvs)
        {
            bytes.Add(type);
            bytes.AddRange(Port(value.Length));
            bytes.AddRange(value);
        }
        return [.. bytes];
    }

    /// <summary>
    /// Fills in the CRC32c TLV of <paramref name="header"/> (whose value starts at <paramref name="valueOffset"/>) the way
    /// a sender does: checksum of the header with the field zeroed, big-endian. A bitwise CRC32c, independent of the gateway's.
    /// </summary>
    public static byte[] WithCrc32C(byte[] header, int valueOffset)
    {
        var copy = (byte[])header.Clone();
        copy.AsSpan(valueOffset, 4).Clear();
        BinaryPrimitives.WriteUInt32BigEndian(copy.AsSpan(valueOffset), BitwiseCrc32C(copy));
        return copy;
    }

    /// <summary>CRC32c, reflected polynomial 0x82F63B78, one bit at a time (RFC 4960 appendix B).</summary>
    public static uint BitwiseCrc32C(ReadOnlySpan<byte> data)
    {
        var crc = uint.MaxValue;
        foreach (var b in data)
        {
            crc ^= b;
            for (var i = 0; i < 8; i++)
            {
                crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
            }
        }
        return ~crc;
    }

    private static byte[] Port(int port) => [(byte)(port >> 8), (byte)port];
}
