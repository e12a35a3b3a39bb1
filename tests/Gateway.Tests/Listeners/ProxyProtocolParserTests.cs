using System.Buffers;
using System.Net;
using System.Text;
using Gateway.Listeners;

namespace Gateway.Tests.Listeners;

/// <summary>The PROXY protocol parser on spans: v1 and v2 as balancers send them, and every way a header can be wrong.</summary>
public sealed class ProxyProtocolParserTests
{
    private static readonly byte[] Request = "GET /chat HTTP/1.1\r\n"u8.ToArray();

    private static ProxyHeader AssertComplete(byte[] header, ReadOnlySpan<byte> followedBy = default)
    {
        byte[] data = [.. header, .. followedBy];
        var result = ProxyProtocolParser.Parse(data);
        Assert.Equal(ProxyParseStatus.Complete, result.Status);
        Assert.Equal(header.Length, result.Length);
        return result.Header!;
    }

    private static ProxyParseResult AssertRejected(byte[] data, ProxyProtocolRejection reason)
    {
        var result = ProxyProtocolParser.Parse(data);
        Assert.True(result.Status == ProxyParseStatus.Rejected, $"expected {reason}, got {result.Status} ({result.Rejection}: {result.Detail})");
        Assert.Equal(reason, result.Rejection);
        Assert.False(string.IsNullOrEmpty(result.Detail));
        return result;
    }

    private static byte[] Ascii(string text) => Encoding.ASCII.GetBytes(text);

    [Fact]
    public void V1_TCP4_names_the_client_and_the_address_it_reached()
    {
        var header = AssertComplete(Ascii("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n"), Request);
        Assert.Equal(1, header.Version);
        Assert.False(header.Local);
        Assert.Equal(new IPEndPoint(IPAddress.Parse("192.0.2.1"), 56324), header.Source);
        Assert.Equal(new IPEndPoint(IPAddress.Parse("198.51.100.2"), 443), header.Destination);
    }

    [Theory]
    [InlineData("2001:db8::1", "2001:db8::2")]
    [InlineData("::1", "::")]
    [InlineData("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "FFFF:0:0:0:0:0:0:1")]
    [InlineData("::ffff:192.0.2.1", "64:ff9b::192.0.2.2")]
    public void V1_TCP6_names_the_client(string source, string destination)
    {
        var header = AssertComplete(Ascii($"PROXY TCP6 {source} {destination} 0 65535\r\n"), Request);
        Assert.Equal(new IPEndPoint(IPAddress.Parse(source), 0), header.Source);
        Assert.Equal(new IPEndPoint(IPAddress.Parse(destination), 65535), header.Destination);
    }

    [Theory]
    [InlineData("PROXY UNKNOWN\r\n")]
    [InlineData("PROXY UNKNOWN ffff:f::f:ffff whatever the sender put here\r\n")]
    // The longest line the specification allows: 107 bytes with its CRLF.
    [InlineData("PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n")]
    public void V1_UNKNOWN_keeps_the_connections_own_addresses(string line)
    {
        var header = AssertComplete(Ascii(line), Request);
        Assert.Equal(1, header.Version);
        Assert.Null(header.Source);
        Assert.Null(header.Destination);
    }

    [Fact]
    public void V1_longer_than_107_bytes_is_oversized_without_waiting_for_more()
    {
        var line = "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 655355\r\n";
        Assert.Equal(108, line.Length);
        AssertRejected(Ascii(line), ProxyProtocolRejection.Oversized);
        // 107 bytes and no CRLF: no byte that could still arrive would make it valid.
        AssertRejected(Ascii("PROXY UNKNOWN " + new string('a', 93)), ProxyProtocolRejection.Oversized);
        Assert.Equal(ProxyParseStatus.Incomplete, ProxyProtocolParser.Parse(Ascii("PROXY UNKNOWN " + new string('a', 92))).Status);
    }

    [Theory]
    [InlineData("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\n")] // LF alone
    [InlineData("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\rX\n")] // CR alone
    [InlineData("PROXY  TCP4 192.0.2.1 198.51.100.2 56324 443\r\n")] // two spaces
    [InlineData("PROXY TCP4 192.0.2.1  198.51.100.2 56324 443\r\n")]
    [InlineData("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443 \r\n")] // trailing space
    [InlineData("PROXY TCP4 192.0.2.1 198.51.100.2 56324\r\n")] // a field missing
    [InlineData("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443 80\r\n")] // a field too many
    [InlineData("PROXY TCP4 192.0.2.01 198.51.100.2 56324 443\r\n")] // leading zero (octal?)
    [InlineData("PROXY TCP4 192.0.2 198.51.100.2 56324 443\r\n")]
    [InlineData("PROXY TCP4 192.0.2.256 198.51.100.2 56324 443\r\n")]
    [InlineData("PROXY TCP4 192.0.2.1.5 198.51.100.2 56324 443\r\n")]
    [InlineData("PROXY TCP4 2001:db8::1 198.51.100.2 56324 443\r\n")] // IPv6 under TCP4
    [InlineData("PROXY TCP6 192.0.2.1 2001:db8::2 56324 443\r\n")] // IPv4 under TCP6
    [InlineData("PROXY TCP6 [2001:db8::1] 2001:db8::2 56324 443\r\n")]
    [InlineData("PROXY TCP6 fe80::1%eth0 2001:db8::2 56324 443\r\n")]
    [InlineData("PROXY TCP6 2001:db8::1::2 2001:db8::2 56324 443\r\n")]
    [InlineData("PROXY TCP4 192.0.2.1 198.51.100.2 056324 443\r\n")] // leading zero port
    [InlineData("PROXY TCP4 192.0.2.1 198.51.100.2 65536 443\r\n")]
    [InlineData("PROXY TCP4 192.0.2.1 198.51.100.2 -1 443\r\n")]
    [InlineData("PROXY TCP5 192.0.2.1 198.51.100.2 56324 443\r\n")]
    [InlineData("PROXY tcp4 192.0.2.1 198.51.100.2 56324 443\r\n")]
    [InlineData("PROXY UNKNOWNX\r\n")]
    [InlineData("PROXY \r\n")]
    [InlineData("PROXY\r\n")]
    [InlineData("PROXYTCP4 192.0.2.1 198.51.100.2 56324 443\r\n")]
    [InlineData("PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\t\r\n")] // a control character
    public void V1_that_does_not_match_the_grammar_exactly_is_malformed(string line)
    {
        AssertRejected(Ascii(line), ProxyProtocolRejection.Malformed);
    }

    [Fact]
    public void V1_with_a_byte_beyond_ASCII_is_malformed()
    {
        AssertRejected([.. Ascii("PROXY TCP4 192.0.2.1 198.51.100.2 5"), 0xC3, 0xA9, .. Ascii(" 443\r\n")], ProxyProtocolRejection.Malformed);
    }

    [Fact]
    public void V2_PROXY_over_IPv4_names_the_client()
    {
        var header = AssertComplete(ProxyHeaders.V2("203.0.113.7", 51234, "192.0.2.100", 443), Request);
        Assert.Equal(2, header.Version);
        Assert.False(header.Local);
        Assert.Equal(new IPEndPoint(IPAddress.Parse("203.0.113.7"), 51234), header.Source);
        Assert.Equal(new IPEndPoint(IPAddress.Parse("192.0.2.100"), 443), header.Destination);
    }

    [Fact]
    public void V2_PROXY_over_IPv6_names_the_client()
    {
        var header = AssertComplete(ProxyHeaders.V2("2001:db8:1::7", 65535, "2001:db8:2::1", 8443), Request);
        Assert.Equal(new IPEndPoint(IPAddress.Parse("2001:db8:1::7"), 65535), header.Source);
        Assert.Equal(new IPEndPoint(IPAddress.Parse("2001:db8:2::1"), 8443), header.Destination);
    }

    [Fact]
    public void V2_LOCAL_keeps_the_balancers_address_and_skips_whatever_block_it_carries()
    {
        var bare = AssertComplete(ProxyHeaders.V2Local(), Request);
        Assert.True(bare.Local);
        Assert.Null(bare.Source);

        // "Receivers MUST always consider this field to skip the appropriate number of bytes."
        var withBlock = AssertComplete(ProxyHeaders.V2Local(new byte[12]), Request);
        Assert.True(withBlock.Local);
        Assert.Null(withBlock.Source);

        // The gateway's own warm-up sends this one.
        Assert.True(AssertComplete(ProxyProtocolV2.LocalHeader.ToArray()).Local);
    }

    [Theory]
    [InlineData(0, 0, 0)] // UNSPEC: the address information is ignored
    [InlineData(0, 1, 5)]
    [InlineData(3, 1, 216)] // AF_UNIX stream
    [InlineData(1, 2, 12)] // UDP over IPv4
    [InlineData(2, 2, 36)] // UDP over IPv6
    [InlineData(1, 0, 12)]
    public void V2_PROXY_for_families_without_a_TCP_endpoint_keeps_the_connections_own_addresses(int family, int transport, int blockLength)
    {
        var header = AssertComplete(ProxyHeaders.V2Raw(command: 1, family, transport, new byte[blockLength]), Request);
        Assert.False(header.Local);
        Assert.Null(header.Source);
    }

    [Fact]
    public void V2_with_TLVs_after_the_addresses_is_accepted_and_skipped_whole()
    {
        var header = ProxyHeaders.V2("203.0.113.7", 51234, tlvs:
        [
            (0x01, "h2"u8.ToArray()), // ALPN
            (0x02, "chat.example.com"u8.ToArray()), // authority (SNI)
            (0x04, new byte[7]), // NOOP
            (0x05, new byte[128]), // unique id
            (0xEA, [0x01, .. "vpce-08d2bf15fac5001c9"u8]), // AWS: VPC endpoint id
            (0xE0, []), // custom, empty value
        ]);
        var parsed = AssertComplete(header, Request);
        Assert.Equal(new IPEndPoint(IPAddress.Parse("203.0.113.7"), 51234), parsed.Source);
    }

    [Fact]
    public void V2_as_an_AWS_Network_Load_Balancer_sends_it_passes_its_CRC32c()
    {
        // The NLB header in AWS's PROXY protocol compatibility test (aws/elastic-load-balancing-tools, proprot:
        // Compatibility_AwsNetworkLoadBalancerTest): CRC32c, VPC endpoint and NOOP TLVs.
        byte[] header =
        [
            0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11, 0x00, 0x54,
            0xac, 0x1f, 0x07, 0x71, 0xac, 0x1f, 0x0a, 0x1f, 0xc8, 0xf2, 0x00, 0x50,
            0x03, 0x00, 0x04, 0xe8, 0xd6, 0x89, 0x2d,
            0xea, 0x00, 0x17, 0x01, .. "vpce-08d2bf15fac5001c9"u8,
            0x04, 0x00, 0x24, .. new byte[36],
        ];
        var parsed = AssertComplete(header, Request);
        Assert.Equal(new IPEndPoint(IPAddress.Parse("172.31.7.113"), 51442), parsed.Source);
        Assert.Equal(new IPEndPoint(IPAddress.Parse("172.31.10.31"), 80), parsed.Destination);

        // One bit changed anywhere (here: the client's port) and the checksum no longer matches.
        var tampered = (byte[])header.Clone();
        tampered[25] ^= 0x01;
        var result = AssertRejected(tampered, ProxyProtocolRejection.Malformed);
        Assert.Contains("CRC32c", result.Detail);
    }

    [Fact]
    public void V2_CRC32c_is_checked_over_the_whole_header()
    {
        var unsigned = ProxyHeaders.V2("2001:db8::7", 40000, "2001:db8::1", 443, (0x03, new byte[4]), (0x02, "chat.example.com"u8.ToArray()));
        var signed = ProxyHeaders.WithCrc32C(unsigned, valueOffset: 16 + 36 + 3);
        Assert.Equal(new IPEndPoint(IPAddress.Parse("2001:db8::7"), 40000), AssertComplete(signed).Source);
        AssertRejected(unsigned, ProxyProtocolRejection.Malformed);
        var shortCrc = ProxyHeaders.V2("192.0.2.1", 1, tlvs: (0x03, new byte[3]));
        AssertRejected(shortCrc, ProxyProtocolRejection.Malformed);
    }

    [Fact]
    public void The_hardware_CRC32c_matches_the_standard_check_value_and_a_bitwise_one()
    {
        // The check value of CRC-32C over "123456789" (RFC 3720 section B.4 lists the algorithm; 0xE3069283 is its catalogued check).
        Assert.Equal(0xE3069283u, ~ProxyProtocolV2.Crc32C(uint.MaxValue, "123456789"u8));
        var data = new byte[1000];
        new Random(7).NextBytes(data);
        for (var length = 0; length < 40; length++)
        {
            Assert.Equal(ProxyHeaders.BitwiseCrc32C(data.AsSpan(0, length)), ~ProxyProtocolV2.Crc32C(uint.MaxValue, data.AsSpan(0, length)));
        }
    }

    [Theory]
    [InlineData(new byte[] { 0xE1 })] // a type and nothing else
    [InlineData(new byte[] { 0xE1, 0x00 })]
    [InlineData(new byte[] { 0xE1, 0x00, 0x01 })] // a length with no value
    [InlineData(new byte[] { 0xE1, 0x00, 0x02, 0x00 })] // a value cut short
    [InlineData(new byte[] { 0xE1, 0x00, 0x00, 0xE2 })] // a good TLV, then a cut one
    public void V2_TLVs_that_do_not_fill_the_header_exactly_are_malformed(byte[] tlvs)
    {
        var addresses = ProxyHeaders.V2("192.0.2.1", 1000)[16..];
        AssertRejected(ProxyHeaders.V2Raw(command: 1, family: 1, transport: 1, [.. addresses, .. tlvs]), ProxyProtocolRejection.Malformed);
    }

    [Theory]
    [InlineData(1, 1, 1, 1)] // version 1 in binary form
    [InlineData(3, 1, 1, 1)]
    [InlineData(2, 2, 1, 1)] // command 2
    [InlineData(2, 0xF, 1, 1)]
    [InlineData(2, 1, 4, 1)] // family 4
    [InlineData(2, 1, 1, 3)] // transport 3
    public void V2_with_an_undefined_version_command_family_or_transport_is_malformed(int version, int command, int family, int transport)
    {
        AssertRejected(ProxyHeaders.V2Raw(command, family, transport, new byte[12], version), ProxyProtocolRejection.Malformed);
    }

    [Theory]
    [InlineData(1, 11)]
    [InlineData(2, 12)]
    [InlineData(2, 35)]
    [InlineData(3, 215)]
    public void V2_with_an_address_block_shorter_than_its_family_is_malformed(int family, int blockLength)
    {
        AssertRejected(ProxyHeaders.V2Raw(command: 1, family, transport: 1, new byte[blockLength]), ProxyProtocolRejection.Malformed);
    }

    [Fact]
    public void V2_longer_than_the_cap_is_oversized_as_soon_as_its_length_is_known()
    {
        var header = ProxyHeaders.V2Raw(command: 1, family: 1, transport: 1, new byte[2049]);
        AssertRejected(header[..16], ProxyProtocolRejection.Oversized);
        var largest = ProxyHeaders.V2("192.0.2.1", 1, tlvs: (0x04, new byte[2048 - 12 - 3]));
        Assert.Equal(16 + 2048, largest.Length);
        AssertComplete(largest);
    }

    [Theory]
    [InlineData(new byte[] { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01 })] // a TLS ClientHello
    [InlineData(new byte[] { (byte)'G', (byte)'E', (byte)'T', (byte)' ', (byte)'/' })]
    [InlineData(new byte[] { (byte)'P', (byte)'R', (byte)'I', (byte)' ', (byte)'*' })] // the HTTP/2 preface
    [InlineData(new byte[] { (byte)'P', (byte)'O', (byte)'S', (byte)'T' })]
    [InlineData(new byte[] { 0x16 })] // decided on the first byte
    public void A_client_speaking_TLS_or_HTTP_directly_is_missing_its_header(byte[] data)
    {
        AssertRejected(data, ProxyProtocolRejection.Missing);
    }

    [Theory]
    [InlineData(new byte[] { 0x00 })]
    [InlineData(new byte[] { 0xFF, 0xFE, 0xFD })]
    [InlineData(new byte[] { (byte)'p', (byte)'r', (byte)'o', (byte)'x', (byte)'y' })]
    [InlineData(new byte[] { 0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0B, 0x21, 0x11, 0x00, 0x00 })] // wrong last signature byte
    [InlineData(new byte[] { 0x0D, 0x0A, 0x0D, 0x0D })] // the signature broken early
    [InlineData(new byte[] { 0x0D, 0x0A, 0x0D, 0x0A, 0x0D, 0x0A })] // a run of blank lines
    public void Bytes_that_begin_neither_signature_are_garbage(byte[] data)
    {
        AssertRejected(data, ProxyProtocolRejection.Garbage);
    }

    public static TheoryData<string, byte[]> ValidHeaders => new()
    {
        { "v1 TCP4", ProxyHeaders.V1("203.0.113.7", 51234) },
        { "v1 TCP6", ProxyHeaders.V1("2001:db8::7", 51234, "2001:db8::1") },
        { "v1 UNKNOWN", "PROXY UNKNOWN\r\n"u8.ToArray() },
        { "v2 IPv4", ProxyHeaders.V2("203.0.113.7", 51234) },
        { "v2 IPv6 with TLVs", ProxyHeaders.V2("2001:db8::7", 51234, "2001:db8::1", 443, (0x02, "chat.example.com"u8.ToArray())) },
        { "v2 LOCAL", ProxyHeaders.V2Local(new byte[12]) },
    };

    [Theory]
    [MemberData(nameof(ValidHeaders))]
    public void Every_prefix_of_a_header_is_incomplete_and_says_how_much_more_is_needed(string name, byte[] header)
    {
        for (var length = 0; length < header.Length; length++)
        {
            var result = ProxyProtocolParser.Parse(header.AsSpan(0, length));
            Assert.True(result.Status == ProxyParseStatus.Incomplete, $"{name}: {length} bytes gave {result.Status} ({result.Detail})");
            Assert.InRange(result.Length, length + 1, header.Length);
        }
        Assert.Equal(ProxyParseStatus.Complete, ProxyProtocolParser.Parse(header).Status);
    }

    [Theory]
    [MemberData(nameof(ValidHeaders))]
    public void A_header_spread_over_one_segment_per_byte_parses_like_a_contiguous_one(string name, byte[] header)
    {
        byte[] data = [.. header, .. Request];
        var sequence = OneSegmentPerByte(data);
        Assert.False(sequence.IsSingleSegment);
        var result = ProxyProtocolParser.Parse(sequence);
        Assert.True(result.Status == ProxyParseStatus.Complete, $"{name}: {result.Status} ({result.Detail})");
        Assert.Equal(header.Length, result.Length);
        var contiguous = ProxyProtocolParser.Parse(data).Header!;
        Assert.Equal(contiguous.Source, result.Header!.Source);
        Assert.Equal(contiguous.Local, result.Header.Local);
    }

    [Fact]
    public void A_truncated_header_stays_incomplete_until_the_connection_says_it_ended()
    {
        // The parser cannot know a connection ended; the middleware counts that as truncated. It must never mistake
        // the first part of a header for a whole one.
        var header = ProxyHeaders.V2("203.0.113.7", 51234, tlvs: (0x02, "chat.example.com"u8.ToArray()));
        Assert.Equal(ProxyParseStatus.Incomplete, ProxyProtocolParser.Parse(header.AsSpan(0, header.Length - 1)).Status);
        Assert.Equal(header.Length, ProxyProtocolParser.Parse(header.AsSpan(0, 16)).Length);
    }

    private static ReadOnlySequence<byte> OneSegmentPerByte(byte[] data)
    {
        var first = new Segment(data.AsMemory(0, 1), 0);
        var last = first;
        for (var i = 1; i < data.Length; i++)
        {
            last = last.Append(data.AsMemory(i, 1));
        }
        return new ReadOnlySequence<byte>(first, 0, last, 1);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, long runningIndex)
        {
            Memory = memory;
            RunningIndex = runningIndex;
        }

        public Segment Append(ReadOnlyMemory<byte> memory)
        {
            var next = new Segment(memory, RunningIndex + Memory.Length);
            Next = next;
            return next;
        }
    }
}
