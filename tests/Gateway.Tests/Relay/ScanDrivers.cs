using System.Buffers.Binary;
using Gateway.Relay;

namespace Gateway.Tests.Relay;

/// <summary>One frame for a <see cref="FrameScanner"/> test stream, with what the scanner should do with it.</summary>
internal sealed record TestFrame(byte Opcode, byte[] Payload, bool Fin = true, bool Masked = true, byte Rsv = 0, int LengthBytes = -1)
{
    /// <summary>Set on the pong that answers the gateway's ping: it is dropped, not forwarded.</summary>
    public bool Swallowed { get; init; }

    /// <summary>Raw bytes that replace the encoding (for headers no encoder would write).</summary>
    public byte[]? Raw { get; init; }

    public bool IsControl => (Opcode & 0x8) != 0;

    /// <summary>
    /// The frame's bytes. <see cref="LengthBytes"/> forces the length encoding (0: 7-bit, 2: 16-bit, 8: 64-bit;
    /// -1: the shortest); <paramref name="keySeed"/> makes the mask key (never all zero, so masking shows).
    /// </summary>
    public byte[] Encode(int keySeed)
    {
        if (Raw is not null)
        {
            return Raw;
        }
        var length = Payload.Length;
        var extended = LengthBytes >= 0 ? LengthBytes : length < 126 ? 0 : length <= ushort.MaxValue ? 2 : 8;
        var bytes = new byte[2 + extended + (Masked ? 4 : 0) + length];
        bytes[0] = (byte)((Fin ? 0x80 : 0) | Rsv | Opcode);
        bytes[1] = (byte)((Masked ? 0x80 : 0) | (extended == 0 ? length : extended == 2 ? 126 : 127));
        var offset = 2;
        if (extended == 2)
        {
            BinaryPrimitives.WriteUInt16BigEndian(bytes.AsSpan(offset), (ushort)length);
        }
        else if (extended == 8)
        {
            BinaryPrimitives.WriteUInt64BigEndian(bytes.AsSpan(offset), (ulong)length);
        }
        offset += extended;
        if (Masked)
        {
            Span<byte> key = [(byte)(0x5A + keySeed), (byte)(0xC3 ^ keySeed), (byte)(0x17 + 3 * keySeed), (byte)(0xE8 - keySeed)];
            key.CopyTo(bytes.AsSpan(offset));
            offset += 4;
            for (var i = 0; i < length; i++)
            {
                bytes[offset + i] = (byte)(Payload[i] ^ key[i & 3]);
            }
        }
        else
        {
            Payload.CopyTo(bytes, offset);
        }
        return bytes;
    }
}

/// <summary>What a driver saw after a whole stream went through it.</summary>
internal sealed record ScanOutcome(byte[] Forwarded, ushort ViolationCode, string? ViolationReason, long Messages, long PayloadBytes, ushort CloseCode, int Swallowed)
{
    public override string ToString() =>
        $"forwarded={Forwarded.Length} violation={ViolationCode}/{ViolationReason} messages={Messages} payload={PayloadBytes} close={CloseCode} swallowed={Swallowed}";
}

/// <summary>
/// Feeds a byte stream to a <see cref="FrameScanner"/> piece by piece the way <c>RelayTunnel</c> does, and collects
/// the bytes it would forward. Buffers are kept between <see cref="Reset"/>s so that a large stream can be split
/// at every offset without allocating per split.
/// </summary>
internal abstract class ScanDriver
{
    public const ulong PongPayload = 0x0123_4567_89AB_CDEF;

    /// <summary>RelayTunnel's carries: a header (14 bytes) and two more.</summary>
    protected const int CarryLength = WebSocketFrame.MaxHeaderLength + 2;

    private readonly bool _fromClient;
    private readonly long _maxFrameBytes;
    private readonly long _maxMessageBytes;
    private readonly byte _allowedReservedBits;
    protected readonly byte[] Carry = new byte[CarryLength];
    private byte[] _output;

    protected FrameScanner Scanner;
    protected int CarryHeld;
    protected bool PongOutstanding;
    protected bool Violated;
    protected int SwallowedCount;

    protected ScanDriver(bool fromClient, long maxFrameBytes, long maxMessageBytes, byte allowedReservedBits, int capacity)
    {
        _fromClient = fromClient;
        _maxFrameBytes = maxFrameBytes;
        _maxMessageBytes = maxMessageBytes;
        _allowedReservedBits = allowedReservedBits;
        _output = new byte[capacity];
        Reset();
    }

    public int OutputLength { get; private set; }

    public ReadOnlySpan<byte> Output => _output.AsSpan(0, OutputLength);

    /// <summary>True while the bytes forwarded so far end at a frame boundary (where the gateway may insert a ping).</summary>
    public bool AtFrameBoundary => Scanner.AtFrameBoundary;

    public bool Stopped => Violated;

    public int Held => CarryHeld;

    public void Reset()
    {
        Scanner = default;
        Scanner.Configure(_fromClient, _maxFrameBytes, _maxMessageBytes, _allowedReservedBits);
        CarryHeld = 0;
        PongOutstanding = true; // the gateway has pinged: one pong carrying PongPayload is its own
        Violated = false;
        SwallowedCount = 0;
        OutputLength = 0;
    }

    /// <summary>One read (client side) or one write from YARP (backend side).</summary>
    public abstract void Feed(ReadOnlySpan<byte> piece);

    public (ushort ViolationCode, string? Reason, long Messages, long PayloadBytes, ushort CloseCode, int Swallowed) Counts =>
        (Scanner.ViolationCode, Scanner.ViolationReason, Scanner.Messages, Scanner.PayloadBytes, Scanner.CloseCode, SwallowedCount);

    public ScanOutcome Outcome() => new(Output.ToArray(), Scanner.ViolationCode, Scanner.ViolationReason,
        Scanner.Messages, Scanner.PayloadBytes, Scanner.CloseCode, SwallowedCount);

    protected void Forward(ReadOnlySpan<byte> bytes)
    {
        if (OutputLength + bytes.Length > _output.Length)
        {
            Array.Resize(ref _output, Math.Max(_output.Length * 2, OutputLength + bytes.Length));
        }
        bytes.CopyTo(_output.AsSpan(OutputLength));
        OutputLength += bytes.Length;
    }

    public static ScanDriver For(bool fromClient, long maxFrameBytes = 0, long maxMessageBytes = 0, byte allowedReservedBits = 0, int capacity = 1024) =>
        new ReadDriver(fromClient, maxFrameBytes, maxMessageBytes, allowedReservedBits, capacity);
}

/// <summary>
/// RelayTunnel's read paths (ReadCoreAsync, ReadBackendCoreAsync) and its Filter, the same for both directions: each read
/// lands behind the held carry in one buffer, which is compacted in place (pongs dropped), and a NeedMore tail is copied
/// to the carry for the next read.
/// </summary>
internal sealed class ReadDriver : ScanDriver
{
    private byte[] _buffer;

    public ReadDriver(bool fromClient, long maxFrameBytes, long maxMessageBytes, byte allowedReservedBits, int capacity)
        : base(fromClient, maxFrameBytes, maxMessageBytes, allowedReservedBits, capacity)
    {
        _buffer = new byte[capacity + CarryLength];
    }

    public override void Feed(ReadOnlySpan<byte> piece)
    {
        if (Violated)
        {
            return; // the tunnel closes: nothing more is read
        }
        if (_buffer.Length < CarryHeld + piece.Length)
        {
            _buffer = new byte[CarryHeld + piece.Length];
        }
        Carry.AsSpan(0, CarryHeld).CopyTo(_buffer);
        piece.CopyTo(_buffer.AsSpan(CarryHeld));
        var data = _buffer.AsSpan(0, CarryHeld + piece.Length);
        CarryHeld = 0;
        Forward(data[..Filter(data)]);
    }

    private int Filter(Span<byte> data)
    {
        int read = 0, write = 0;
        var pongExpected = PongOutstanding;
        while (read < data.Length)
        {
            switch (Scanner.Scan(data[read..], pongExpected, PongPayload, out var length))
            {
                case ScanResult.Pass:
                    Assert.True(length > 0, "Pass must move on");
                    if (write != read)
                    {
                        data.Slice(read, length).CopyTo(data[write..]);
                    }
                    write += length;
                    read += length;
                    break;
                case ScanResult.Swallow:
                    read += length;
                    pongExpected = false;
                    PongOutstanding = false;
                    SwallowedCount++;
                    break;
                case ScanResult.NeedMore:
                    var rest = data[read..];
                    Assert.True(rest.Length <= CarryLength, $"NeedMore with {rest.Length} bytes: more than the carry holds");
                    rest.CopyTo(Carry);
                    CarryHeld = rest.Length;
                    read = data.Length;
                    break;
                case ScanResult.Violation:
                    Violated = true;
                    read = data.Length;
                    break;
            }
        }
        return write;
    }
}
