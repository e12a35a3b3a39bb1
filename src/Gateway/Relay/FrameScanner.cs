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

    /// <summary>
    /// A data frame's header is whole and the rate limits are to be asked (<see cref="FrameScanner.AskBeforeData"/>):
    /// nothing of it has been taken (<c>length</c> is 0). The caller calls <see cref="FrameScanner.Admit"/> or
    /// <see cref="FrameScanner.DropFrame"/> and scans the same bytes again, or stops there.
    /// </summary>
    Admit,

    /// <summary>The next <c>length</c> bytes belong to a dropped message: they go nowhere.</summary>
    Drop,
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
    private long _maxFrameBytes;
    private long _maxMessageBytes;
    private bool _fromClient;
    private byte _allowedReservedBits;

    // Rate limits: ask before each data frame; the frame at the current position was admitted or is to be dropped; the
    // payload now passing is dropped; the message being dropped goes on (its continuation frames are dropped unasked).
    private bool _askBeforeData;
    private bool _admitted;
    private bool _dropNext;
    private bool _dropping;
    private bool _droppingMessage;

    /// <summary>The data frame an <see cref="ScanResult.Admit"/> asks about: whether it starts a message, and its payload length.</summary>
    public bool FrameStartsMessage;
    public long FramePayload;

    /// <summary>Data messages dropped by the rate limits (all their frames), and their payload bytes.</summary>
    public long DroppedMessages;
    public long DroppedBytes;

    // A Close frame's status code (§5.5.1: its first 2 payload bytes) may arrive in a later read than its header.
    // Until it has passed: how many of its bytes are still to come, the code so far (unmasked), and the two mask-key
    // bytes that cover it (§5.3: payload byte i is masked with key byte i mod 4, so the code needs only keys 0 and 1).
    private byte _closeCodeMissing;
    private ushort _closeCodeSoFar;
    private ushort _closeCodeMask;

    /// <summary>Data messages whose final frame has passed.</summary>
    public long Messages;

    /// <summary>Payload bytes of data frames that passed.</summary>
    public long PayloadBytes;

    /// <summary>
    /// The status code of the first Close frame seen in this direction (1005 when it carried none); 0 before, and
    /// until the code's 2 bytes have passed (a stream that ends inside them had no complete Close: 1006 is right).
    /// </summary>
    public ushort CloseCode;

    public ushort ViolationCode;
    public string? ViolationReason;

    /// <param name="fromClient">Frames come from the client: they must be masked, and reserved opcodes are refused.</param>
    /// <param name="maxFrameBytes">Largest data frame payload; 0 for no limit.</param>
    /// <param name="maxMessageBytes">Largest data message payload (all its frames); 0 for no limit.</param>
    /// <param name="allowedReservedBits">
    /// The RSV bits of the first header byte (<see cref="WebSocketFrame.ReservedBits"/>) that a negotiated extension
    /// defines, e.g. <see cref="WebSocketFrame.Rsv1"/> for permessage-deflate (<see cref="WebSocketExtensions.AllowedReservedBits"/>).
    /// </param>
    public void Configure(bool fromClient, long maxFrameBytes, long maxMessageBytes, byte allowedReservedBits)
    {
        _fromClient = fromClient;
        _maxFrameBytes = maxFrameBytes;
        _maxMessageBytes = maxMessageBytes;
        _allowedReservedBits = (byte)(allowedReservedBits & WebSocketFrame.ReservedBits);
    }

    /// <remarks>While a dropped frame's payload passes by, the peer downstream got none of it: that is a boundary too.</remarks>
    public readonly bool AtFrameBoundary => _payloadRemaining == 0 || _dropping;

    /// <summary>Whether each data frame is first handed to the caller (<see cref="ScanResult.Admit"/>): rate limits are on.</summary>
    public bool AskBeforeData
    {
        readonly get => _askBeforeData;
        set => _askBeforeData = value;
    }

    /// <summary>The frame the last <see cref="ScanResult.Admit"/> asked about goes on: the next scan takes it.</summary>
    public void Admit() => _admitted = true;

    /// <summary>The frame the last <see cref="ScanResult.Admit"/> asked about, and the rest of its message, are dropped.</summary>
    public void DropFrame() => _dropNext = true;

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
            if (_dropping)
            {
                _dropping = _payloadRemaining > 0;
                return ScanResult.Drop;
            }
            if (_closeCodeMissing != 0)
            {
                TakeCloseCode(input[..length]);
            }
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
        var isControl = (opcode & 0x8) != 0;
        // §5.2: RSV1-3 MUST be 0 unless a negotiated extension defines them; the backend's are allowed by the caller.
        if ((first & WebSocketFrame.ReservedBits & ~_allowedReservedBits) != 0)
        {
            return Violate(1002, "reserved bits set");
        }
        if (_fromClient)
        {
            // Only the client's frames are held to the opcodes and RSV1 placement: the client is who the gateway
            // protects the backend from, while the backend's own frames stay transparent to the client.
            // §5.2, §7.1.7: opcodes 3-7 and 0xB-0xF are reserved, and receiving one fails the connection.
            if (opcode is > WebSocketFrame.OpcodeBinary and < WebSocketFrame.OpcodeClose or > WebSocketFrame.OpcodePong)
            {
                return Violate(1002, "reserved opcode");
            }
            // RFC 7692 §6: RSV1 ("compressed") MUST NOT be set on control frames or on non-first fragments.
            if ((first & WebSocketFrame.Rsv1) != 0 && (isControl || opcode == WebSocketFrame.OpcodeContinuation))
            {
                return Violate(1002, "reserved bits set");
            }
        }
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
            var startsMessage = opcode != WebSocketFrame.OpcodeContinuation;
            if (_droppingMessage || _dropNext)
            {
                if (_dropNext || !startsMessage)
                {
                    // The frame the limits refused, or a later fragment of its message (RFC 6455 §5.4: a message is
                    // dropped whole, never in part).
                    _dropNext = false;
                    _droppingMessage = !fin;
                    if (startsMessage)
                    {
                        DroppedMessages++;
                    }
                    DroppedBytes += payloadLength;
                    var skipped = (int)Math.Min(payloadLength, input.Length - headerLength);
                    _payloadRemaining = payloadLength - skipped;
                    _dropping = _payloadRemaining > 0;
                    length = headerLength + skipped;
                    return ScanResult.Drop;
                }
                _droppingMessage = false; // a new message where a fragment was due: the endpoints' business, as below
            }
            if (_askBeforeData)
            {
                if (!_admitted)
                {
                    FrameStartsMessage = startsMessage;
                    FramePayload = payloadLength;
                    return ScanResult.Admit;
                }
                _admitted = false;
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
        if (opcode == WebSocketFrame.OpcodeClose && CloseCode == 0)
        {
            StartCloseCode(input, headerLength, payloadLength, masked);
            TakeCloseCode(input.Slice(headerLength, passed));
        }
        return ScanResult.Pass;
    }

    /// <summary>§5.5.1: a Close payload starts with a 2-byte status code; 1005 stands for "none" (§7.4.1).</summary>
    private void StartCloseCode(ReadOnlySpan<byte> input, int headerLength, long payloadLength, bool masked)
    {
        if (payloadLength < 2)
        {
            CloseCode = 1005;
            return;
        }
        _closeCodeMissing = 2;
        _closeCodeSoFar = 0;
        _closeCodeMask = masked ? BinaryPrimitives.ReadUInt16BigEndian(input[(headerLength - 4)..]) : (ushort)0;
    }

    /// <summary>Reads what the start of a Close payload holds of its status code (network byte order, §5.5.1), as it passes.</summary>
    private void TakeCloseCode(ReadOnlySpan<byte> payload)
    {
        var i = 0;
        while (_closeCodeMissing != 0 && i < payload.Length)
        {
            var shift = (_closeCodeMissing - 1) * 8; // the high byte first
            _closeCodeSoFar |= (ushort)(((payload[i++] ^ (_closeCodeMask >> shift)) & 0xFF) << shift);
            _closeCodeMissing--;
        }
        if (_closeCodeMissing == 0 && i > 0)
        {
            CloseCode = _closeCodeSoFar == 0 ? (ushort)1005 : _closeCodeSoFar;
        }
    }

    private ScanResult Violate(ushort code, string reason)
    {
        ViolationCode = code;
        ViolationReason = reason;
        return ScanResult.Violation;
    }
}
