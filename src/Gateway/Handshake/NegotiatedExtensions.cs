using Microsoft.Extensions.Primitives;

namespace Gateway.Handshake;

/// <summary>Reads the extensions a backend agreed to in its 101 (RFC 6455 §9.1) for what they allow on the wire.</summary>
internal static class NegotiatedExtensions
{
    /// <summary>RSV1 in the first byte of a frame header.</summary>
    public const byte Rsv1 = 0x40;

    /// <summary>
    /// RSV1 when <c>permessage-deflate</c> was agreed (RFC 7692 §6: it sets RSV1 on a message's first frame); no other
    /// extension is known, so no other bit. The header is a comma-separated list of extensions, each a token with
    /// optional <c>;</c> parameters.
    /// </summary>
    public static byte AllowedReservedBits(StringValues extensions)
    {
        foreach (var value in extensions)
        {
            if (value is null)
            {
                continue;
            }
            foreach (var range in value.AsSpan().Split(','))
            {
                var extension = value.AsSpan()[range];
                var semicolon = extension.IndexOf(';');
                var name = (semicolon >= 0 ? extension[..semicolon] : extension).Trim(" \t");
                if (name.Equals("permessage-deflate", StringComparison.OrdinalIgnoreCase))
                {
                    return Rsv1;
                }
            }
        }
        return 0;
    }
}
