using System.Text.Unicode;

namespace Gateway.LoadBalancing;

/// <summary>
/// A 64-bit hash that every gateway process computes alike, so replicas send a key to the same destination:
/// FNV-1a over UTF-8 bytes, then MurmurHash3's 64-bit finalizer, since FNV-1a alone leaves the high bits of short,
/// similar keys ("room1", "room2") close together, and ring positions are compared by the whole 64 bits.
/// <see cref="string.GetHashCode()"/> is randomized per process and would not do. Fed piecewise, without allocating.
/// </summary>
internal struct StableHash
{
    private const ulong OffsetBasis = 14695981039346656037;
    private const ulong Prime = 1099511628211;

    private ulong _state;

    public static StableHash Create() => new() { _state = OffsetBasis };

    /// <summary>
    /// A hash that first takes in a secret (the cluster's <c>HashSeed</c>) and a zero byte, so that where a key lands
    /// cannot be computed without the secret. The state after the secret is computed once, at load; without a secret
    /// this is <see cref="Create"/>, so unseeded keys hash as they always did.
    /// </summary>
    public static StableHash Seeded(string? seed)
    {
        var hash = Create();
        if (!string.IsNullOrEmpty(seed))
        {
            hash.AppendUtf8(seed);
            hash.Append(0);
        }
        return hash;
    }

    /// <summary>The hash of the text's UTF-8 bytes.</summary>
    public static ulong Of(ReadOnlySpan<char> text) => Of(Create(), text);

    /// <summary>The hash of the text's UTF-8 bytes, from a start such as <see cref="Seeded"/>.</summary>
    public static ulong Of(StableHash start, ReadOnlySpan<char> text)
    {
        start.AppendUtf8(text);
        return start.Finish();
    }

    public void Append(byte value) => _state = (_state ^ value) * Prime;

    public void Append(ReadOnlySpan<byte> bytes)
    {
        var state = _state;
        foreach (var b in bytes)
        {
            state = (state ^ b) * Prime;
        }
        _state = state;
    }

    /// <summary>Adds the text as UTF-8, a stack buffer at a time; lone surrogates count as U+FFFD, as the encoder has it.</summary>
    public void AppendUtf8(ReadOnlySpan<char> text)
    {
        Span<byte> buffer = stackalloc byte[128];
        while (!text.IsEmpty)
        {
            // A chunk never ends inside a surrogate pair: the encoder stops before a code point that does not fit.
            Utf8.FromUtf16(text, buffer, out var read, out var written, replaceInvalidSequences: true, isFinalBlock: true);
            Append(buffer[..written]);
            text = text[read..];
        }
    }

    /// <summary>FNV-1a's state without the finalizer, for checking against the published FNV test vectors.</summary>
    internal readonly ulong Fnv1a => _state;

    public readonly ulong Finish()
    {
        var k = _state;
        k ^= k >> 33;
        k *= 0xff51afd7ed558ccd;
        k ^= k >> 33;
        k *= 0xc4ceb9fe1a85ec53;
        k ^= k >> 33;
        return k;
    }
}
