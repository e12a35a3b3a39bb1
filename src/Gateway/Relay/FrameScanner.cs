using System.Buffers.Binary;

namespace Gateway.Relay;

internal enum ScanResult : byte
{
    /// <summary>The next <c>length</c> bytes go on unchanged.</summary>
    Pass,

    /// <summary>The next <c>length</c> bytes are a whole pong answering the gateway's own ping: drop them.</summary>
    Swallow,

    /// <summary>A frame header (or a pong the gateway may own) is incomplete: hold the remaining bytes until more arrive.</summary>
    NeedMore,

    /// <summary>The peer broke a rule; <see cref="FrameScanner.ViolationCode"/> says which.</summary>
    Violation,
}

/// <summary>
/// Follows one direction of a WebSocket byte stream frame by frame (RFC 6455 §5.2) without copying payloads:
/// it reads each header, then lets the payload pass by count. Headers split across reads are never passed in part
/// (the caller holds them back), so whenever <see cref="AtFrameBoundary"/> is true the peer downstream has
/// received only whole frames, and a control frame may be inserted there (§5.4 allows them between fragments).
/// Written by hand: no framework type parses a WebSocket stream it does not own.
/// </summary>
internal struct FrameScanner
{
    private long _payloadRemaining;
    private long _messageBytes;
    private bool _fromClient;
    private long _maxFrameBytes;
    private long _maxMessageBytes;

    /// <summary>Data messages whose final frame has passed.</summary>
    public long Messages;

    /// <summary>Payload bytes of data frames that passed.</summary>
    public long PayloadBytes;

    /// <summary>The status code of the first Close frame seen in this direction (1005 when it carried none); 0 before.</summary>
    public ushort CloseCode;

    public ushort ViolationCode;
    public string? ViolationReason;

    /// <summary>RSV1, RSV2 and RSV3 of a header's first byte.</summary>
    public const byte AllReservedBits = 0x70;

    private byte _allowedReservedBits;

    public void Configure(bool fromClient, long maxFrameBytes, long maxMessageBytes, byte allowedReservedBits)
    {
        _allowedReservedBits = allowedReservedBits;
        _fromClient = fromClient;
        _maxFrameBytes = maxFrameBytes;
        _maxMessageBytes = maxMessageBytes;
    }

    public readonly bool AtFrameBoundary => _payloadRemaining == 0;

    /// <summary>
    /// Looks at the start of <paramref name="input"/> and says what to do with how many bytes.
    /// A pong whose 8-byte payload equals <paramref name="expectedPong"/> (when <paramref name="pongExpected"/>) is swallowed.
    /// </summary>
    public ScanResult Scan(ReadOnlySpan<byte> input, bool pongExpected, ulong expectedPong, out int length)
    {
        if (_payloadRemaining > 0)
        {
            length = (int)Math.Min(_payloadRemaining, input.Length);
            _payloadRemaining -= length;
            return ScanResult.Pass;
        }

        length = 0;
        if (input.Length < 2)
        {
            return ScanResult.NeedMore;
        }

        var first = input[0];
        var second = input[1];
        var fin = (first & 0x80) != 0;
        var opcode = (byte)(first & 0x0F);
        var masked = (second & 0x80) != 0;
        var length7 = second & 0x7F;
        var headerLength = 2 + (length7 == 126 ? 2 : length7 == 127 ? 8 : 0) + (masked ? 4 : 0);
        if (input.Length < headerLength)
        {
            return ScanResult.NeedMore;
        }

        long payloadLength = length7 switch
        {
            126 => BinaryPrimitives.ReadUInt16BigEndian(input[2..]),
            127 => (long)BinaryPrimitives.ReadUInt64BigEndian(input[2..]),
            _ => length7,
        };

        // §5.2: the most significant bit of a 64-bit length MUST be 0.
        if (payloadLength < 0)
        {
            return Violate(1002, "invalid frame length");
        }
        // §5.1: a client MUST mask every frame it sends, a server MUST NOT mask any.
        if (masked != _fromClient)
        {
            return Violate(1002, _fromClient ? "client frames must be masked" : "server frames must not be masked");
        }

        var isControl = (opcode & 0x8) != 0;
        if (isControl)
        {
            // §5.5: control frames have at most 125 bytes of payload and are never fragmented.
            if (payloadLength > WebSocketFrame.MaxControlPayload)
            {
                return Violate(1002, "control frame too long");
            }
            if (!fin)
            {
                return Violate(1002, "fragmented control frame");
            }
            if (opcode == WebSocketFrame.OpcodeClose && CloseCode == 0)
            {
                CloseCode = ReadCloseCode(input, headerLength, payloadLength, masked);
            }
            if (opcode == WebSocketFrame.OpcodePong && pongExpected && payloadLength == WebSocketFrame.PingPayloadLength)
            {
                var frameLength = headerLength + WebSocketFrame.PingPayloadLength;
                if (input.Length < frameLength)
                {
                    return ScanResult.NeedMore;
                }
                var payload = BinaryPrimitives.ReadUInt64BigEndian(input[headerLength..]);
                if (masked)
                {
                    var key = BinaryPrimitives.ReadUInt32BigEndian(input[(headerLength - 4)..]);
                    payload ^= ((ulong)key << 32) | key;
                }
                if (payload == expectedPong)
                {
                    length = frameLength;
                    return ScanResult.Swallow;
                }
            }
        }
        else
        {
            if (_maxFrameBytes > 0 && payloadLength > _maxFrameBytes)
            {
                return Violate(1009, "frame too big");
            }
            // A text or binary frame starts a message, a continuation extends it (§5.4). Whether they arrive in a
            // legal order is the endpoints' business: the gateway counts, it does not reassemble.
            _messageBytes = opcode == WebSocketFrame.OpcodeContinuation ? _messageBytes + payloadLength : payloadLength;
            if (_maxMessageBytes > 0 && _messageBytes > _maxMessageBytes)
            {
                return Violate(1009, "message too big");
            }
            PayloadBytes += payloadLength;
            if (fin)
            {
                Messages++;
            }
        }

        var available = input.Length - headerLength;
        var passed = (int)Math.Min(payloadLength, available);
        _payloadRemaining = payloadLength - passed;
        length = headerLength + passed;
        return ScanResult.Pass;
    }

    /// <summary>§5.5.1: a Close payload starts with a 2-byte status code; 1005 stands for "none" (§7.4.1).</summary>
    private static ushort ReadCloseCode(ReadOnlySpan<byte> input, int headerLength, long payloadLength, bool masked)
    {
        if (payloadLength < 2 || input.Length < headerLength + 2)
        {
            return 1005;
        }
        int high = input[headerLength], low = input[headerLength + 1];
        if (masked)
        {
            high ^= input[headerLength - 4];
            low ^= input[headerLength - 3];
        }
        var code = (ushort)((high << 8) | low);
        return code == 0 ? (ushort)1005 : code;
    }

    private ScanResult Violate(ushort code, string reason)
    {
        ViolationCode = code;
        ViolationReason = reason;
        return ScanResult.Violation;
    }
}
