using Gateway.Http;
using Microsoft.Extensions.Primitives;

namespace Gateway.Handshake;

/// <summary>What the extensions agreed in a handshake allow on the wire.</summary>
internal static class WebSocketExtensions
{
    private const string PermessageDeflate = "permessage-deflate";

    /// <summary>The first reserved bit of a frame's first byte (RFC 6455 §5.2), as the relay's frame scanner reads it.</summary>
    private const byte Rsv1 = 0x40;

    /// <summary>
    /// The RSV bits the extensions in a 101's <c>Sec-WebSocket-Extensions</c> values define: RSV1 when
    /// permessage-deflate was agreed (RFC 7692 §5, §6), none otherwise. Each value is a comma-separated list of
    /// extensions, each a name (a case-insensitive token) followed by <c>;</c>-separated parameters (RFC 6455 §9.1).
    /// </summary>
    public static byte AllowedReservedBits(StringValues extensions)
    {
        foreach (var value in extensions)
        {
            if (value is not null && NamesExtension(value, PermessageDeflate))
            {
                return Rsv1;
            }
        }
        return 0;
    }

    /// <summary>True when one of the comma-separated extensions in <paramref name="header"/> is called <paramref name="name"/>.</summary>
    private static bool NamesExtension(ReadOnlySpan<char> header, string name)
    {
        while (true)
        {
            var end = ExtensionEnd(header);
            var extension = header[..end];
            var semicolon = extension.IndexOf(';');
            var extensionName = HttpSyntax.TrimOws(semicolon < 0 ? extension : extension[..semicolon]);
            if (extensionName.Equals(name, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
            if (end == header.Length)
            {
                return false;
            }
            header = header[(end + 1)..];
        }
    }

    /// <summary>Where the first extension ends: at the first comma outside a quoted parameter value.</summary>
    private static int ExtensionEnd(ReadOnlySpan<char> header)
    {
        var quoted = false;
        for (var i = 0; i < header.Length; i++)
        {
            switch (header[i])
            {
                case '"':
                    quoted = !quoted;
                    break;
                case '\\' when quoted:
                    i++; // a quoted-pair (RFC 9110 §5.6.4): the next character is taken as it is
                    break;
                case ',' when !quoted:
                    return i;
            }
        }
        return header.Length;
    }
}
