using System.Buffers;

namespace Gateway.Listeners;

/// <summary>
/// Recognises a PROXY protocol header, version 1 or 2 (HAProxy, "The PROXY protocol", versions 1 and 2), at the start
/// of what a connection has sent so far. It decides as early as the bytes allow: a first byte that can begin neither
/// signature rejects at once, so a client that bypassed the balancer is closed without waiting for the timeout.
/// </summary>
internal static class ProxyProtocolParser
{
    /// <summary>The longest header accepted: a v2 header with the longest address block and TLVs allowed.</summary>
    public const int MaxHeaderLength = ProxyProtocolV2.FixedLength + ProxyProtocolV2.MaxBlockLength;

    /// <summary>Parses a header from the start of <paramref name="data"/> (bytes after the header are left alone).</summary>
    public static ProxyParseResult Parse(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty)
        {
            return ProxyParseResult.Incomplete(1);
        }
        if (StartsLike(data, ProxyProtocolV2.Signature))
        {
            return ProxyProtocolV2.Parse(data);
        }
        if (StartsLike(data, ProxyProtocolV1.Signature))
        {
            return ProxyProtocolV1.Parse(data);
        }
        // Section 2 of the specification: neither signature can be confused with HTTP or TLS, so these are the bytes
        // of a client speaking to the gateway directly (or through a balancer not set to send the header).
        return data[0] switch
        {
            0x16 => ProxyParseResult.Reject(ProxyProtocolRejection.Missing, "a TLS handshake, not a PROXY header"),
            >= (byte)'A' and <= (byte)'Z' => ProxyParseResult.Reject(ProxyProtocolRejection.Missing, "an HTTP request, not a PROXY header"),
            _ => ProxyParseResult.Reject(ProxyProtocolRejection.Garbage, "neither a PROXY v1 nor a v2 signature"),
        };
    }

    /// <summary>
    /// Parses a header from a pipe's buffer. Bytes spread over several segments (a header that arrived in pieces) are
    /// copied to the stack, at most one header's worth; one segment, the usual case, is parsed in place.
    /// </summary>
    public static ProxyParseResult Parse(in ReadOnlySequence<byte> data)
    {
        if (data.IsSingleSegment)
        {
            return Parse(data.FirstSpan);
        }
        var length = (int)Math.Min(data.Length, MaxHeaderLength);
        Span<byte> copy = stackalloc byte[MaxHeaderLength];
        data.Slice(0, length).CopyTo(copy);
        return Parse(copy[..length]);
    }

    /// <summary>True when <paramref name="data"/> begins with <paramref name="signature"/>, or with as much of it as has arrived.</summary>
    private static bool StartsLike(ReadOnlySpan<byte> data, ReadOnlySpan<byte> signature) =>
        data.Length >= signature.Length ? data.StartsWith(signature) : signature.StartsWith(data);
}
