
namespace Gateway.Relay;

// One pass over what was read from a peer, the same for both directions.
internal sealed partial class RelayTunnel
{
    /// <summary>
    /// Compacts <paramref name="data"/> in place: drops the pong that answers the gateway's ping to this peer, holds back
    /// a header split across reads (in <paramref name="carry"/>), and stops at a frame that breaks a rule (nothing from it
    /// on is forwarded). Returns the bytes that go on; <paramref name="leadingPong"/> is the length of a swallowed pong
    /// that was all there was before anything else passed.
    /// </summary>
    /// <remarks>
    /// With rate limits on, each data frame is first put to them (<see cref="ScanResult.Admit"/>): it passes, is dropped
    /// with the rest of its message, closes the tunnel (as a violation, code 1008), or is held: the filter stops there and
    /// keeps the rest of the read in <paramref name="held"/>, to be scanned again when the bucket has room.
    /// </remarks>
    private int Filter(ref FrameScanner scanner, ref PeerKeepAlive peer, string side, Span<byte> data, ref byte[]? carry, ref int carryLength,
        ref HeldInput held, out bool violation, out int leadingPong)
    {
        int read = 0, write = 0;
        violation = false;
        leadingPong = 0;
        var pongExpected = Volatile.Read(ref peer.Outstanding);
        var expected = peer.Payload;
        while (read < data.Length)
        {
            switch (scanner.Scan(data[read..], pongExpected, expected, out var length))
            {
                case ScanResult.Pass:
                    if (write != read)
                    {
                        data.Slice(read, length).CopyTo(data[write..]);
                    }
                    write += length;
                    read += length;
                    break;
                case ScanResult.Swallow:
                    leadingPong = write == 0 && read == 0 ? length : 0;
                    read += length;
                    pongExpected = false;
                    OnPong(ref peer, side);
                    break;
                case ScanResult.NeedMore:
                    var rest = data[read..];
                    carry ??= new byte[WebSocketFrame.MaxHeaderLength + 2];
                    rest.CopyTo(carry);
                    carryLength = rest.Length;
                    read = data.Length;
                    break;
                case ScanResult.Violation:
                    violation = true;
                    SeekClientClose(side, data[read..]);
                    read = data.Length;
                    break;
                case ScanResult.Drop:
                    read += length;
                    break;
                case ScanResult.Admit:
                    var fromClient = ReferenceEquals(side, RelayMetrics.Side.Client);
                    switch (AdmitData(fromClient, scanner.FrameStartsMessage, scanner.FramePayload, out var wait, out var judgedAt))
                    {
                        case RateDecision.Pass:
                            scanner.Admit();
                            break;
                        case RateDecision.Drop:
                            scanner.DropFrame();
                            break;
                        case RateDecision.Hold:
                            Hold(ref held, data[read..], wait, judgedAt, _sweeper.Time.TimestampFrequency);
                            read = data.Length;
                            break;
                        default:
                            if (fromClient)
                            {
                                scanner.ViolationCode = 1008; // RFC 6455 §7.4.1: policy violation
                                scanner.ViolationReason = RateLimitReason;
                            }
                            else
                            {
                                _backendRateLimitClose = true;
                            }
                            violation = fromClient;
                            SeekClientClose(side, data[read..]);
                            read = data.Length;
                            break;
                    }
                    break;
            }
        }
        return write;
    }

    /// <summary>Puts a header held back from the last read at the start of the next one.</summary>
    private static int TakeCarry(byte[]? carry, ref int carryLength, Span<byte> destination)
    {
        var length = carryLength;
        if (length > 0)
        {
            carry.AsSpan(0, length).CopyTo(destination);
            carryLength = 0;
        }
        return length;
    }
}
