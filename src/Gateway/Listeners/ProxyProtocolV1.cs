using System.Net;
using System.Net.Sockets;

namespace Gateway.Listeners;

/// <summary>
/// The human-readable header (section 2.1 of the PROXY protocol specification): one US-ASCII line of at most 107 bytes
/// with its CRLF, <c>PROXY TCP4|TCP6 source destination source-port destination-port</c> or <c>PROXY UNKNOWN ...</c>.
/// Strict as the specification asks ("any sequence which does not exactly match the protocol must be discarded"):
/// single spaces, no leading zeros, addresses of the announced family.
/// </summary>
internal static class ProxyProtocolV1
{
    public const int MaxLength = 107;

    public static ReadOnlySpan<byte> Signature => "PROXY"u8;

    private const byte CR = (byte)'\r';
    private const byte LF = (byte)'\n';
    private const byte Space = (byte)' ';

    /// <summary>Parses <paramref name="data"/>, which begins with (as much as has arrived of) <see cref="Signature"/>.</summary>
    public static ProxyParseResult Parse(ReadOnlySpan<byte> data)
    {
        if (data.Length > Signature.Length && data[Signature.Length] != Space)
        {
            return Malformed("v1: no space after PROXY");
        }
        // The line ends at the first CRLF, which must end by byte 107; a bare CR or LF is no end of line.
        var end = -1;
        var scan = Math.Min(data.Length, MaxLength);
        for (var i = 0; i < scan; i++)
        {
            var b = data[i];
            if (b == CR)
            {
                if (i + 2 > MaxLength)
                {
                    return Oversized;
                }
                if (i + 1 == data.Length)
                {
                    return ProxyParseResult.Incomplete(i + 2);
                }
                if (data[i + 1] != LF)
                {
                    return Malformed("v1: a CR without LF");
                }
                end = i;
                break;
            }
            if (b is < 0x20 or > 0x7E)
            {
                return Malformed("v1: a byte that is not printable US-ASCII before the CRLF");
            }
        }
        if (end < 0)
        {
            return data.Length >= MaxLength ? Oversized : ProxyParseResult.Incomplete(data.Length + 1);
        }

        var line = data[..end];
        var length = end + 2;
        if (line.Length <= Signature.Length)
        {
            return Malformed("v1: no protocol after PROXY");
        }
        var rest = line[(Signature.Length + 1)..];
        if (rest.StartsWith("UNKNOWN"u8) && (rest.Length == 7 || rest[7] == Space))
        {
            // The sender could not fill in the line: whatever follows UNKNOWN is ignored, the connection's own addresses stand.
            return ProxyParseResult.Complete(length, new ProxyHeader(1, local: false, null, null));
        }
        AddressFamily family;
        if (rest.StartsWith("TCP4 "u8))
        {
            family = AddressFamily.InterNetwork;
        }
        else if (rest.StartsWith("TCP6 "u8))
        {
            family = AddressFamily.InterNetworkV6;
        }
        else
        {
            return Malformed("v1: a protocol other than TCP4, TCP6 or UNKNOWN");
        }
        rest = rest[5..];

        if (!NextField(ref rest, out var sourceText) || !NextField(ref rest, out var destinationText)
            || !NextField(ref rest, out var sourcePortText) || !NextField(ref rest, out var destinationPortText) || !rest.IsEmpty)
        {
            return Malformed("v1: not exactly four fields after the protocol, separated by single spaces");
        }
        var source = ParseAddress(sourceText, family);
        var destination = ParseAddress(destinationText, family);
        if (source is null || destination is null)
        {
            return Malformed(family == AddressFamily.InterNetwork ? "v1: an address that is not a dotted-quad IPv4 address" : "v1: an address that is not an IPv6 address");
        }
        if (!TryParsePort(sourcePortText, out var sourcePort) || !TryParsePort(destinationPortText, out var destinationPort))
        {
            return Malformed("v1: a port that is not a decimal number 0-65535 without leading zeros");
        }
        return ProxyParseResult.Complete(length, new ProxyHeader(1, local: false, new IPEndPoint(source, sourcePort), new IPEndPoint(destination, destinationPort)));
    }

    /// <summary>Takes the text up to the next space (or the end); false for an empty field (two spaces, a trailing space).</summary>
    private static bool NextField(ref ReadOnlySpan<byte> rest, out ReadOnlySpan<byte> field)
    {
        var space = rest.IndexOf(Space);
        if (space < 0)
        {
            field = rest;
            rest = default;
        }
        else
        {
            field = rest[..space];
            rest = rest[(space + 1)..];
            if (rest.IsEmpty)
            {
                return false;
            }
        }
        return !field.IsEmpty;
    }

    private static IPAddress? ParseAddress(ReadOnlySpan<byte> text, AddressFamily family) =>
        family == AddressFamily.InterNetwork ? ParseIPv4(text) : ParseIPv6(text);

    /// <summary>Exactly four decimal numbers 0-255 separated by dots, without leading zeros (which could mean octal).</summary>
    private static IPAddress? ParseIPv4(ReadOnlySpan<byte> text)
    {
        Span<byte> octets = stackalloc byte[4];
        for (var i = 0; i < 4; i++)
        {
            var dot = text.IndexOf((byte)'.');
            var part = i < 3 ? (dot < 0 ? default : text[..dot]) : text;
            if (i < 3 && dot < 0 || i == 3 && dot >= 0 || !TryParseDecimal(part, 255, out var value))
            {
                return null;
            }
            octets[i] = (byte)value;
            text = i < 3 ? text[(dot + 1)..] : default;
        }
        return new IPAddress(octets);
    }

    /// <summary>Hex groups and colons (an embedded dotted quad allowed): no brackets, no zone, no IPv4 address.</summary>
    private static IPAddress? ParseIPv6(ReadOnlySpan<byte> text)
    {
        // The longest form is 45 characters (ffff:...:ffff:255.255.255.255).
        if (text.Length > 45 || text.IndexOf((byte)':') < 0)
        {
            return null;
        }
        Span<char> chars = stackalloc char[text.Length];
        for (var i = 0; i < text.Length; i++)
        {
            var c = (char)text[i];
            if (!char.IsAsciiHexDigit(c) && c is not ':' and not '.')
            {
                return null;
            }
            chars[i] = c;
        }
        return IPAddress.TryParse(chars, out var address) && address.AddressFamily == AddressFamily.InterNetworkV6 ? address : null;
    }

    private static bool TryParsePort(ReadOnlySpan<byte> text, out int port) => TryParseDecimal(text, 65535, out port);

    /// <summary>1-5 decimal digits, no leading zero (but "0" itself), at most <paramref name="max"/>.</summary>
    private static bool TryParseDecimal(ReadOnlySpan<byte> text, int max, out int value)
    {
        value = 0;
        if (text.IsEmpty || text.Length > 5 || text.Length > 1 && text[0] == (byte)'0')
        {
            return false;
        }
        foreach (var b in text)
        {
            if (b is < (byte)'0' or > (byte)'9')
            {
                return false;
            }
            value = value * 10 + (b - '0');
        }
        return value <= max;
    }

    private static ProxyParseResult Oversized =>
        ProxyParseResult.Reject(ProxyProtocolRejection.Oversized, "a v1 line without CRLF in its first 107 bytes");

    private static ProxyParseResult Malformed(string detail) => ProxyParseResult.Reject(ProxyProtocolRejection.Malformed, detail);
}
