using System.Buffers.Binary;

namespace Gateway.Relay;

/// <summary>
/// Follows a client's frames after the gateway closed it for what it sent, without keeping any of them: it only skips
/// each frame's payload and says when a Close frame begins (the client's answer, RFC 6455 §5.5.1). Written by hand: the
/// relay's scanner judges frames, while this one must pass over the very frames it refused. A length it cannot follow
/// (§5.2: the most significant bit of a 64-bit length set) leaves only the end of the stream to wait for.
/// </summary>
internal struct CloseSeeker
{
    private long _skip;
    private byte[]? _header;
    private int _headerLength;
    private bool _lost;

    /// <summary>A Close frame has begun: the client answered.</summary>
    public bool SawClose { get; private set; }

    /// <summary>Passes over <paramref name="data"/>; returns <see cref="SawClose"/>.</summary>
    public bool Feed(ReadOnlySpan<byte> data)
    {
        while (!data.IsEmpty && !SawClose && !_lost)
        {
            if (_skip > 0)
            {
                var skipped = (int)Math.Min(_skip, data.Length);
                _skip -= skipped;
                data = data[skipped..];
                continue;
            }
            if (_headerLength > 0)
            {
                // A header split across reads: complete it from the new bytes (at most 14 in all).
                var taken = Math.Min(WebSocketFrame.MaxHeaderLength - _headerLength, data.Length);
                data[..taken].CopyTo(_header.AsSpan(_headerLength));
                var carried = _headerLength;
                var length = Parse(_header.AsSpan(0, carried + taken));
                if (length == 0)
                {
                    _headerLength = carried + taken;
                    return SawClose;
                }
                _headerLength = 0;
                data = data[(length - carried)..];
                continue;
            }
            var headerLength = Parse(data);
            if (headerLength == 0)
            {
                _header ??= new byte[WebSocketFrame.MaxHeaderLength];
                data.CopyTo(_header);
                _headerLength = data.Length;
                return SawClose;
            }
            data = data[headerLength..];
        }
        return SawClose;
    }

    /// <summary>Reads one frame header: its length, or 0 when more bytes are needed. Sets what follows it.</summary>
    private int Parse(ReadOnlySpan<byte> header)
    {
        if (header.Length < 2)
        {
            return 0;
        }
        var length7 = header[1] & 0x7F;
        var headerLength = 2 + (length7 == 126 ? 2 : length7 == 127 ? 8 : 0) + ((header[1] & 0x80) != 0 ? 4 : 0);
        if (header.Length < headerLength)
        {
            return 0;
        }
        if ((header[0] & 0x0F) == WebSocketFrame.OpcodeClose)
        {
            SawClose = true;
            return headerLength;
        }
        long payload = length7 switch
        {
            126 => BinaryPrimitives.ReadUInt16BigEndian(header[2..]),
            127 => (long)BinaryPrimitives.ReadUInt64BigEndian(header[2..]),
            _ => length7,
        };
        if (payload < 0)
        {
            _lost = true;
        }
        _skip = payload;
        return headerLength;
    }
}
