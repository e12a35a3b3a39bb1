using System.Globalization;
using System.Text;
using Gateway.Http;

namespace Gateway.Proxy;

/// <summary>Decodes a chunked message body (RFC 9112 section 7.1) into bytes, up to a limit; trailers are dropped.</summary>
internal static class ChunkedBody
{
    public static async Task<byte[]> ReadAsync(Stream source, int maxBytes, CancellationToken cancellationToken)
    {
        var reader = new BufferedStream(source, 4096);
        using var body = new MemoryStream();
        while (true)
        {
            // chunk-size [ chunk-ext ] CRLF
            var line = await ReadLineAsync(reader, cancellationToken).ConfigureAwait(false);
            var sizeText = line.AsSpan();
            var extension = sizeText.IndexOf(';');
            if (extension >= 0)
            {
                sizeText = sizeText[..extension];
            }
            if (!long.TryParse(HttpSyntax.TrimOws(sizeText), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var size) || size < 0)
            {
                throw new InvalidDataException($"bad chunk size line '{(line.Length > 40 ? line[..40] : line)}'");
            }
            if (size == 0)
            {
                // trailer-section CRLF: header lines up to the empty one.
                while ((await ReadLineAsync(reader, cancellationToken).ConfigureAwait(false)).Length > 0)
                {
                }
                return body.ToArray();
            }
            if (body.Length + size > maxBytes)
            {
                throw new InvalidDataException($"a chunked response body is over the {maxBytes}-byte limit");
            }
            var chunk = new byte[size];
            await reader.ReadExactlyAsync(chunk, cancellationToken).ConfigureAwait(false);
            body.Write(chunk);
            if ((await ReadLineAsync(reader, cancellationToken).ConfigureAwait(false)).Length != 0)
            {
                throw new InvalidDataException("chunk data not followed by CRLF");
            }
        }
    }

    private static async Task<string> ReadLineAsync(Stream reader, CancellationToken cancellationToken)
    {
        var line = new StringBuilder();
        var one = new byte[1];
        while (true)
        {
            if (await reader.ReadAsync(one, cancellationToken).ConfigureAwait(false) == 0)
            {
                throw new IOException("the backend closed the connection inside a chunked body");
            }
            if (one[0] == (byte)'\n')
            {
                return line.ToString().TrimEnd('\r');
            }
            if (line.Length > 8192)
            {
                throw new InvalidDataException("a chunk line is too long");
            }
            line.Append((char)one[0]);
        }
    }
}
