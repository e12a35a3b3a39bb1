using System.Buffers.Binary;
using System.Text;
using Gateway.Relay;

namespace Gateway.Tests.Relay;

/// <summary>
/// The scanner against byte streams of whole frames, fed split at every offset (two reads), byte by byte and whole,
/// through drivers that use it as RelayTunnel does: whatever the split, the same bytes go on, the same pongs are
/// dropped, the same counts and close code come out, and the same violation stops the stream at the same frame.
/// </summary>
public sealed class FrameScannerTests
{
    private const byte Rsv1 = 0x40, Rsv2 = 0x20, Rsv3 = 0x10;
    private const byte Cont = 0x0, Text = 0x1, Binary = 0x2, Close = 0x8, Ping = 0x9, Pong = 0xA;

    private static readonly byte[] OwnPong = BigEndian(ScanDriver.PongPayload);

    /// <summary>A stream for one direction, what the scanner is told, and what must come out.</summary>
    internal sealed record Case(bool FromClient, TestFrame[] Frames, ushort CloseCode = 0, byte Allowed = 0, long MaxFrame = 0, long MaxMessage = 0,
        int ViolationAt = -1, ushort ViolationCode = 0, string? Reason = null);

    private static readonly Dictionary<string, Case> Valid = new()
    {
        ["client: text, binary, a fragmented message with control frames between fragments, pongs, close"] = new(true,
        [
            new(Text, Utf8("hello")),
            new(Binary, Bytes(300)), // 16-bit length
            new(Text, Utf8("frag-1"), Fin: false),
            new(Ping, Utf8("between")),
            new(Pong, OwnPong) { Swallowed = true },
            new(Cont, Utf8("frag-2"), Fin: false),
            new(Pong, BigEndian(ScanDriver.PongPayload + 1)), // 8 bytes, not the gateway's: the backend's business
            new(Pong, Utf8("short")),
            new(Cont, Utf8("frag-3")),
            new(Pong, OwnPong), // the gateway's pong was already answered: this one is unsolicited
            new(Binary, Bytes(200), LengthBytes: 8), // 64-bit length field
            new(Binary, Bytes(125)),
            new(Binary, Bytes(126)),
            new(Binary, []),
            new(Ping, Bytes(125)),
            new(Close, CloseBody(4001, "bye")),
            new(Close, CloseBody(1000, "")), // only the first Close counts
        ], CloseCode: 4001),
        ["backend: the same, unmasked"] = new(false,
        [
            new(Text, Utf8("hello"), Masked: false),
            new(Binary, Bytes(300), Masked: false),
            new(Text, Utf8("frag-1"), Fin: false, Masked: false),
            new(Ping, Utf8("between"), Masked: false),
            new(Pong, OwnPong, Masked: false) { Swallowed = true },
            new(Cont, Utf8("frag-2"), Fin: false, Masked: false),
            new(Pong, BigEndian(ScanDriver.PongPayload - 1), Masked: false),
            new(Cont, Utf8("frag-3"), Masked: false),
            new(Pong, OwnPong, Masked: false),
            new(Binary, Bytes(200), Masked: false, LengthBytes: 8),
            new(Close, CloseBody(1011, "backend going away"), Masked: false),
        ], CloseCode: 1011),
        ["client: close with only a code"] = new(true, [new(Text, Utf8("x")), new(Close, CloseBody(1000, ""))], CloseCode: 1000),
        ["client: close without a body"] = new(true, [new(Binary, Bytes(3)), new(Close, [])], CloseCode: 1005),
        ["client: close with a one-byte body"] = new(true, [new(Close, [0x03])], CloseCode: 1005),
        ["client: close with code 0"] = new(true, [new(Close, CloseBody(0, "zero"))], CloseCode: 1005),
        ["backend: close with only a code"] = new(false, [new(Close, CloseBody(1001, ""), Masked: false)], CloseCode: 1001),
        ["backend: close without a body"] = new(false, [new(Close, [], Masked: false)], CloseCode: 1005),
        ["client with permessage-deflate: RSV1 on the first frame of messages"] = new(true,
        [
            new(Text, Bytes(40), Fin: false, Rsv: Rsv1),
            new(Ping, Utf8("mid")),
            new(Cont, Bytes(40)),
            new(Binary, Bytes(130), Rsv: Rsv1),
            new(Text, Bytes(5)), // an uncompressed message
            new(Close, CloseBody(1000, "")),
        ], CloseCode: 1000, Allowed: Rsv1),
        ["client within the size limits"] = new(true,
        [
            new(Binary, Bytes(100), Fin: false),
            new(Ping, Bytes(125)),
            new(Cont, Bytes(50)),
            new(Binary, Bytes(150)),
        ], MaxFrame: 150, MaxMessage: 150),
        ["backend: RSV bits and reserved opcodes pass untouched"] = new(false,
        [
            new(Text, Bytes(10), Masked: false, Rsv: Rsv1 | Rsv2 | Rsv3),
            new(0x3, Bytes(20), Masked: false, Rsv: Rsv2),
            new(0x7, Bytes(300), Masked: false),
            new(0xB, Bytes(5), Masked: false, Rsv: Rsv3),
            new(0xF, [], Masked: false),
            new(Ping, Bytes(4), Masked: false, Rsv: Rsv1),
            new(Cont, Bytes(4), Masked: false, Rsv: Rsv1),
        ], Allowed: WebSocketFrame.ReservedBits),
    };

    private static readonly Dictionary<string, Case> Violations = BuildViolations();

    private static Dictionary<string, Case> BuildViolations()
    {
        // Legal frames before the offending one (a fragment in progress, a control frame), one after it.
        TestFrame[] Around(bool fromClient, TestFrame bad) =>
        [
            new(Text, Utf8("ok"), Masked: fromClient),
            new(Binary, Bytes(130), Fin: false, Masked: fromClient),
            new(Ping, Utf8("p"), Masked: fromClient),
            bad,
            new(Cont, Bytes(3), Masked: fromClient),
        ];
        Case Client(TestFrame bad, ushort code, string reason, byte allowed = 0) =>
            new(true, Around(true, bad), Allowed: allowed, ViolationAt: 3, ViolationCode: code, Reason: reason);

        var cases = new Dictionary<string, Case>
        {
            ["unmasked client frame"] = Client(new(Cont, Utf8("naked"), Masked: false), 1002, "client frames must be masked"),
            ["masked server frame"] = new(false, Around(false, new(Cont, Utf8("veiled"))), ViolationAt: 3, ViolationCode: 1002,
                Reason: "server frames must not be masked", Allowed: WebSocketFrame.ReservedBits),
            ["control frame over 125 bytes"] = Client(new(Ping, Bytes(126)), 1002, "control frame too long"),
            ["fragmented control frame"] = Client(new(Ping, Utf8("x"), Fin: false), 1002, "fragmented control frame"),
            ["RSV2 without an extension"] = Client(new(Cont, Bytes(3), Rsv: Rsv2), 1002, "reserved bits set"),
            ["RSV3 without an extension"] = Client(new(Ping, [], Rsv: Rsv3), 1002, "reserved bits set"),
            ["RSV1 without permessage-deflate"] = Client(new(Text, Bytes(3), Rsv: Rsv1), 1002, "reserved bits set"),
            ["RSV2 with permessage-deflate"] = Client(new(Text, Bytes(3), Rsv: Rsv2), 1002, "reserved bits set", allowed: Rsv1),
            ["RSV1 on a continuation with permessage-deflate"] = Client(new(Cont, Bytes(3), Rsv: Rsv1), 1002, "reserved bits set", allowed: Rsv1),
            ["RSV1 on a control frame with permessage-deflate"] = Client(new(Pong, Bytes(3), Rsv: Rsv1), 1002, "reserved bits set", allowed: Rsv1),
            ["64-bit length with the top bit set (client)"] = Client(TopBitLength(masked: true), 1002, "invalid frame length"),
            ["64-bit length with the top bit set (backend)"] = new(false, Around(false, TopBitLength(masked: false)), ViolationAt: 3,
                ViolationCode: 1002, Reason: "invalid frame length", Allowed: WebSocketFrame.ReservedBits),
            ["frame over MaxFrameBytes"] = new(true, [new(Binary, Bytes(100)), new(Binary, Bytes(101)), new(Text, Bytes(1))],
                MaxFrame: 100, ViolationAt: 1, ViolationCode: 1009, Reason: "frame too big"),
            ["message over MaxMessageBytes"] = new(true,
                [new(Binary, Bytes(100), Fin: false), new(Ping, Bytes(10)), new(Cont, Bytes(50), Fin: false), new(Cont, Bytes(1)), new(Text, Bytes(1))],
                MaxMessage: 150, ViolationAt: 3, ViolationCode: 1009, Reason: "message too big"),
        };
        foreach (var opcode in new byte[] { 0x3, 0x4, 0x5, 0x6, 0x7, 0xB, 0xC, 0xD, 0xE, 0xF })
        {
            cases[$"reserved opcode 0x{opcode:X}"] = Client(new(opcode, Bytes(4)), 1002, "reserved opcode");
        }
        return cases;
    }

    public static TheoryData<string> ValidNames() => new(Valid.Keys);

    public static TheoryData<string> ViolationNames() => new(Violations.Keys);

    [Theory]
    [MemberData(nameof(ValidNames))]
    public void A_stream_comes_out_the_same_at_every_split(string name) => AssertEverySplit(Valid[name]);

    [Theory]
    [MemberData(nameof(ViolationNames))]
    public void A_violation_is_reported_at_the_offending_frame_at_every_split(string name) => AssertEverySplit(Violations[name]);

    [Fact]
    public void Frames_with_64_bit_lengths_are_followed_at_every_split()
    {
        foreach (var fromClient in new[] { true, false })
        {
            AssertEverySplit(new Case(fromClient,
            [
                new(Binary, Bytes(65_536 + 3), Fin: false, Masked: fromClient),
                new(Pong, OwnPong, Masked: fromClient) { Swallowed = true },
                new(Cont, Bytes(300), Masked: fromClient),
                new(Close, CloseBody(1000, "done"), Masked: fromClient),
            ], CloseCode: 1000, Allowed: fromClient ? (byte)0 : WebSocketFrame.ReservedBits));
        }
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void A_close_code_that_arrives_after_its_header_is_read_as_it_passes(bool masked)
    {
        var frame = new TestFrame(Close, CloseBody(4321, "later"), Masked: masked).Encode(keySeed: 7);
        var header = masked ? 6 : 2;
        var driver = ScanDriver.For(fromClient: masked, allowedReservedBits: masked ? (byte)0 : WebSocketFrame.ReservedBits);

        driver.Feed(frame.AsSpan(0, header));
        Assert.Equal(header, driver.OutputLength); // the header goes on at once: nothing is held back for the code
        Assert.Equal(0, driver.Outcome().CloseCode); // not known yet, and not guessed as 1005
        driver.Feed(frame.AsSpan(header, 1));
        Assert.Equal(0, driver.Outcome().CloseCode);
        driver.Feed(frame.AsSpan(header + 1));
        Assert.Equal(4321, driver.Outcome().CloseCode);
        Assert.Equal(frame, driver.Outcome().Forwarded);
    }

    [Fact]
    public void Configure_keeps_only_the_RSV_bits_of_the_mask()
    {
        var scanner = default(FrameScanner);
        scanner.Configure(fromClient: false, 0, 0, allowedReservedBits: 0xFF);
        // Bit 0x80 (FIN) and the opcode bits are not RSV bits: allowing "all" must not change how they are read.
        byte[] frame = [0x80 | 0x40 | Text, 1, (byte)'a'];
        Assert.Equal(ScanResult.Pass, scanner.Scan(frame, false, 0, out var length));
        Assert.Equal(3, length);
        Assert.Equal(1, scanner.Messages);
    }

    private static void AssertEverySplit(Case c)
    {
        var stream = c.Frames.SelectMany((f, i) => f.Encode(keySeed: i)).ToArray();
        var expected = Expect(c);
        var boundaries = Boundaries(c);
        var driver = ScanDriver.For(c.FromClient, c.MaxFrame, c.MaxMessage, c.Allowed, capacity: stream.Length);

        for (var split = 0; split < stream.Length; split++)
        {
            driver.Reset();
            if (split > 0)
            {
                Feed(driver, stream.AsSpan(0, split), boundaries, split);
            }
            Feed(driver, stream.AsSpan(split), boundaries, split);
            AssertOutcome(driver, expected, $"split at {split} of {stream.Length}");
        }

        driver.Reset();
        for (var i = 0; i < stream.Length; i++)
        {
            Feed(driver, stream.AsSpan(i, 1), boundaries, i);
        }
        AssertOutcome(driver, expected, "byte by byte");
    }

    private static void Feed(ScanDriver driver, ReadOnlySpan<byte> piece, HashSet<int> boundaries, int where)
    {
        driver.Feed(piece);
        // The gateway inserts its pings where the scanner says a frame ended: the peer must have whole frames only.
        if (!driver.Stopped && driver.AtFrameBoundary && !boundaries.Contains(driver.OutputLength))
        {
            Assert.Fail($"at {where}: AtFrameBoundary with {driver.OutputLength} bytes forwarded, inside a frame");
        }
    }

    private static void AssertOutcome(ScanDriver driver, ScanOutcome expected, string where)
    {
        if (!driver.Output.SequenceEqual(expected.Forwarded))
        {
            var at = driver.Output.CommonPrefixLength(expected.Forwarded);
            Assert.Fail($"{where}: forwarded {driver.OutputLength} bytes, expected {expected.Forwarded.Length}; first difference at {at}");
        }
        var counts = (expected.ViolationCode, expected.ViolationReason, expected.Messages, expected.PayloadBytes, expected.CloseCode, expected.Swallowed);
        if (driver.Counts != counts)
        {
            Assert.Fail($"{where}: (violation, reason, messages, payload bytes, close code, swallowed) {driver.Counts}, expected {counts}");
        }
        if (expected.ViolationCode == 0 && !(driver.Held == 0 && driver.AtFrameBoundary))
        {
            Assert.Fail($"{where}: the stream ended inside a frame");
        }
    }

    /// <summary>What must come out, worked out from the frames rather than by scanning them.</summary>
    private static ScanOutcome Expect(Case c)
    {
        var frames = c.ViolationAt < 0 ? c.Frames : c.Frames[..c.ViolationAt];
        var data = frames.Where(f => !f.IsControl).ToArray();
        var forwarded = frames.Select((f, i) => (f, i)).Where(x => !x.f.Swallowed).SelectMany(x => x.f.Encode(keySeed: x.i)).ToArray();
        return new ScanOutcome(forwarded, c.ViolationCode, c.Reason, data.Count(f => f.Fin), data.Sum(f => (long)f.Payload.Length),
            c.CloseCode, frames.Count(f => f.Swallowed));
    }

    /// <summary>The forwarded byte counts at which a frame ends.</summary>
    private static HashSet<int> Boundaries(Case c)
    {
        var boundaries = new HashSet<int> { 0 };
        var total = 0;
        for (var i = 0; i < c.Frames.Length && i != c.ViolationAt; i++)
        {
            if (!c.Frames[i].Swallowed)
            {
                total += c.Frames[i].Encode(keySeed: i).Length;
                boundaries.Add(total);
            }
        }
        return boundaries;
    }

    /// <summary>A binary frame header whose 64-bit length has its most significant bit set (§5.2), and a few bytes.</summary>
    private static TestFrame TopBitLength(bool masked)
    {
        var raw = new byte[2 + 8 + (masked ? 4 : 0) + 3];
        raw[0] = 0x80 | Cont;
        raw[1] = (byte)((masked ? 0x80 : 0) | 127);
        BinaryPrimitives.WriteUInt64BigEndian(raw.AsSpan(2), 0x8000_0000_0000_0005);
        return new TestFrame(Cont, [], Masked: masked) { Raw = raw };
    }

    private static byte[] CloseBody(ushort code, string reason)
    {
        var body = new byte[2 + Encoding.UTF8.GetByteCount(reason)];
        BinaryPrimitives.WriteUInt16BigEndian(body, code);
        Encoding.UTF8.GetBytes(reason, body.AsSpan(2));
        return body;
    }

    private static byte[] BigEndian(ulong value)
    {
        var bytes = new byte[8];
        BinaryPrimitives.WriteUInt64BigEndian(bytes, value);
        return bytes;
    }

    private static byte[] Utf8(string text) => Encoding.UTF8.GetBytes(text);

    /// <summary>Payload bytes that differ from their neighbours, so a shifted or dropped byte shows.</summary>
    private static byte[] Bytes(int count)
    {
        var bytes = new byte[count];
        for (var i = 0; i < count; i++)
        {
            bytes[i] = (byte)(i * 7 + count);
        }
        return bytes;
    }
}
