using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using Gateway.Configuration;

namespace Gateway.Handshake;

/// <summary>
/// Whom a per-client limit counts against: an IPv4 address, or the network an IPv6 address belongs to. An IPv6
/// subscriber is usually given a whole /64 (RFC 6177, RFC 7421) and picks new addresses in it at will (privacy
/// addresses, RFC 8981), so counting per /128 would give one client as many allowances as it likes. A 128-bit value
/// in a struct: building it per handshake allocates nothing.
/// </summary>
internal readonly record struct ClientKey(UInt128 Bits)
{
    public const int DefaultIPv6PrefixLength = ConnectionLimitOptions.DefaultIPv6PrefixLength;

    // ::ffff:0:0/96 (RFC 4291 section 2.5.5.2): IPv4 keys are written in this form, so an IPv4 client counts the
    // same whether it reached an IPv4 or a dual-stack listener.
    private static readonly UInt128 MappedPrefix = new(0, 0x0000_FFFF_0000_0000UL);

    // 64:ff9b::/96, the well-known NAT64/SIIT prefix (RFC 6052 section 2.1): each address stands for one IPv4 host
    // behind a translator (SIIT-DC, RFC 7755). Cut to /64, every IPv4 client of the internet would share one
    // allowance; it counts as the IPv4 address it carries.
    private static readonly UInt128 WellKnownTranslationPrefix = new(0x0064_FF9B_0000_0000UL, 0);
    private static readonly UInt128 Low32Mask = uint.MaxValue;

    /// <summary>The key of <paramref name="address"/>: IPv4 (also IPv4-mapped or translated) per address, IPv6 per prefix.</summary>
    /// <param name="ipv6PrefixLength">1 to 128; validated when the policy is loaded.</param>
    public static ClientKey From(IPAddress? address, int ipv6PrefixLength)
    {
        if (address is null)
        {
            return default;
        }
        Span<byte> bytes = stackalloc byte[16];
        if (address.AddressFamily == AddressFamily.InterNetwork)
        {
            address.TryWriteBytes(bytes, out _);
            return new ClientKey(MappedPrefix | BinaryPrimitives.ReadUInt32BigEndian(bytes));
        }
        address.TryWriteBytes(bytes, out _);
        var bits = BinaryPrimitives.ReadUInt128BigEndian(bytes);
        var prefix96 = bits & ~Low32Mask;
        if (prefix96 == MappedPrefix || prefix96 == WellKnownTranslationPrefix)
        {
            return new ClientKey(MappedPrefix | (bits & Low32Mask));
        }
        return new ClientKey(bits & (UInt128.MaxValue << (128 - ipv6PrefixLength)));
    }
}
