using System.Buffers;
using System.Text;
using Gateway.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Primitives;
using Microsoft.Net.Http.Headers;

namespace Gateway.Listeners.LeanHttp1;

/// <summary>
/// The one request head the lean HTTP/1.1 path takes: <c>GET &lt;origin-form&gt; HTTP/1.1</c> with a WebSocket upgrade,
/// no body headers, plain ASCII everywhere. Anything else (or anything this parser is not sure of) is left to Kestrel,
/// which then sees exactly the bytes it would have.
/// </summary>
internal sealed class LeanRequestHead
{
    /// <summary>Heads larger than this go to Kestrel (its own limits are 8 KB for the line, 32 KB for the headers).</summary>
    public const int MaxHeadBytes = 8 * 1024;

    private const int MaxHeaders = 100;

    public required string Path { get; init; }

    public required string QueryString { get; init; }

    public required string RawTarget { get; init; }

    public required HeaderDictionary Headers { get; init; }

    /// <summary>The request's <c>Connection</c> says <c>close</c>: no further request on this connection (RFC 9112 section 9.6).</summary>
    public bool Close { get; init; }

    /// <summary>Parses the head at the start of <paramref name="buffer"/>; null when it is not one the lean path takes.</summary>
    /// <param name="limits">Kestrel's own limits: a head over any of them is left to Kestrel, which answers 414 or 431.</param>
    public static LeanRequestHead? TryParse(in ReadOnlySequence<byte> buffer, KestrelServerLimits limits, out SequencePosition end)
    {
        end = default;
        var max = Math.Min(MaxHeadBytes, limits.MaxRequestHeadersTotalSize + limits.MaxRequestLineSize);
        var window = buffer.Length > max ? buffer.Slice(0, max) : buffer;
        ReadOnlySpan<byte> span;
        byte[]? copy = null;
        if (window.IsSingleSegment)
        {
            span = window.FirstSpan;
        }
        else
        {
            copy = window.ToArray();
            span = copy;
        }
        var headLength = HttpSyntax.IndexOfHeadEnd(span);
        if (headLength < 0)
        {
            return null;
        }
        var head = TryParse(span[..(headLength + 2)], limits);
        if (head is not null)
        {
            end = buffer.GetPosition(headLength + HttpSyntax.HeadEnd.Length);
        }
        return head;
    }

    private static LeanRequestHead? TryParse(ReadOnlySpan<byte> head, KestrelServerLimits limits)
    {
        // Request line.
        if (!head.StartsWith("GET /"u8))
        {
            return null;
        }
        var lineEnd = head.IndexOf(HttpSyntax.Crlf);
        var line = head[..lineEnd];
        // Kestrel counts the request line with its CRLF, and the header fields with theirs (not the final CRLF).
        if (lineEnd + 2 > limits.MaxRequestLineSize || head.Length - (lineEnd + 2) > limits.MaxRequestHeadersTotalSize)
        {
            return null;
        }
        if (!line.EndsWith(" HTTP/1.1"u8))
        {
            return null;
        }
        var target = line[4..^9];
        var queryAt = -1;
        for (var i = 0; i < target.Length; i++)
        {
            var c = target[i];
            // Visible ASCII only; no percent-encoding or dot segments (Kestrel decodes and normalises those), no fragment.
            if (c <= 0x20 || c >= 0x7F || c == (byte)'%' || c == (byte)'#')
            {
                return null;
            }
            if (c == (byte)'?' && queryAt < 0)
            {
                queryAt = i;
            }
        }
        var pathBytes = queryAt < 0 ? target : target[..queryAt];
        if (pathBytes.IndexOf("/."u8) >= 0 || pathBytes.IndexOf("//"u8) >= 0)
        {
            return null;
        }
        var rawTarget = Encoding.ASCII.GetString(target);
        var path = queryAt < 0 ? rawTarget : rawTarget[..queryAt];
        var query = queryAt < 0 ? string.Empty : rawTarget[queryAt..];

        // Header lines, kept in arrival order until the head is known to be the lean path's.
        var maxFields = Math.Min(MaxHeaders, limits.MaxRequestHeaderCount);
        var fields = ArrayPool<KestrelHeaderNames.Field>.Shared.Rent(Math.Max(maxFields, 1));
        var fieldCount = 0;
        try
        {
            return TryParseFields(head[(lineEnd + 2)..], maxFields, fields, ref fieldCount, path, query, rawTarget);
        }
        finally
        {
            fields.AsSpan(0, fieldCount).Clear();
            ArrayPool<KestrelHeaderNames.Field>.Shared.Return(fields);
        }
    }

    private static LeanRequestHead? TryParseFields(ReadOnlySpan<byte> rest, int maxFields, KestrelHeaderNames.Field[] fields,
        ref int fieldCount, string path, string query, string rawTarget)
    {
        bool host = false, upgrade = false, connectionUpgrade = false, keepAlive = false, close = false;
        while (!rest.IsEmpty)
        {
            var end = rest.IndexOf(HttpSyntax.Crlf);
            var field = rest[..end];
            rest = rest[(end + 2)..];
            if (fieldCount == maxFields)
            {
                return null;
            }
            // A token for a name; no control characters, no obs-text, no bare CR or LF in the value: Kestrel rejects
            // or decodes those.
            if (!HttpSyntax.TrySplitFieldLine(field, out var nameBytes, out var valueBytes)
                || !HttpSyntax.IsToken(nameBytes) || !HttpSyntax.IsAsciiFieldValue(valueBytes))
            {
                return null;
            }
            var name = KestrelHeaderNames.Name(nameBytes);
            if (name.Equals(HeaderNames.ContentLength, StringComparison.OrdinalIgnoreCase)
                || name.Equals(HeaderNames.TransferEncoding, StringComparison.OrdinalIgnoreCase))
            {
                return null;
            }
            var value = KnownValue(valueBytes);
            if (name.Equals(HeaderNames.Host, StringComparison.OrdinalIgnoreCase))
            {
                if (host || valueBytes.IsEmpty || !IsSimpleHost(valueBytes))
                {
                    return null;
                }
                host = true;
            }
            else if (name.Equals(HeaderNames.Upgrade, StringComparison.OrdinalIgnoreCase))
            {
                upgrade |= Ascii.EqualsIgnoreCase(valueBytes, "websocket"u8);
            }
            else if (name.Equals(HeaderNames.Connection, StringComparison.OrdinalIgnoreCase))
            {
                // Kestrel reads Connection's list with SP as the only whitespace around its elements (an HTAB inside
                // the value makes the element unknown to it), so such a head is Kestrel's to judge.
                if (valueBytes.Contains((byte)'\t'))
                {
                    return null;
                }
                connectionUpgrade |= HttpSyntax.ListContains(value, "upgrade");
                keepAlive |= HttpSyntax.ListContains(value, "keep-alive");
                close |= HttpSyntax.ListContains(value, "close");
            }
            fields[fieldCount++] = new KestrelHeaderNames.Field(KestrelHeaderNames.Rank(name), name, value);
        }
        if (!host || !upgrade || !connectionUpgrade)
        {
            return null;
        }
        var headers = KestrelHeaderNames.ToHeaders(fields.AsSpan(0, fieldCount));
        if (!keepAlive && !close)
        {
            // Kestrel puts its own "Upgrade" in place of a Connection that names no other option it knows (any case, any
            // repeats, unknown tokens); YARP forwards that value on an upgrade.
            headers[HeaderNames.Connection] = HeaderNames.Upgrade;
        }
        return new LeanRequestHead
        {
            Path = path, QueryString = query, RawTarget = rawTarget, Headers = headers, Close = close,
        };
    }

    /// <summary>
    /// <c>reg-name[:port]</c> or <c>[IPv6][:port]</c> in their plain forms (RFC 9110 section 7.2, RFC 3986 section
    /// 3.2.2); anything fancier (percent-encoding, IPvFuture, user info) is Kestrel's to judge.
    /// </summary>
    internal static bool IsSimpleHost(ReadOnlySpan<byte> host)
    {
        ReadOnlySpan<byte> port;
        if (host[0] == (byte)'[')
        {
            var close = host.IndexOf((byte)']');
            if (close < 3 || host[1..close].IndexOfAnyExcept("0123456789abcdefABCDEF:."u8) >= 0)
            {
                return false;
            }
            port = host[(close + 1)..];
        }
        else
        {
            var colon = host.IndexOf((byte)':');
            var name = colon < 0 ? host : host[..colon];
            if (name.IsEmpty || name.IndexOfAnyExcept("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_~"u8) >= 0)
            {
                return false;
            }
            port = colon < 0 ? default : host[colon..];
        }
        if (port.IsEmpty)
        {
            return true;
        }
        // ":" then 1-5 digits, at most 65535.
        return port[0] == (byte)':' && port.Length is >= 2 and <= 6 && port[1..].IndexOfAnyExceptInRange((byte)'0', (byte)'9') < 0
            && int.Parse(port[1..], System.Globalization.CultureInfo.InvariantCulture) <= 65535;
    }

    private static readonly string[] KnownValues = ["websocket", "Upgrade", "upgrade", "13", "permessage-deflate; client_max_window_bits"];

    private static string KnownValue(ReadOnlySpan<byte> value)
    {
        foreach (var known in KnownValues)
        {
            if (value.Length == known.Length && Ascii.Equals(value, known))
            {
                return known;
            }
        }
        return Encoding.ASCII.GetString(value);
    }
}
