using System.Buffers;
using System.Buffers.Text;
using Microsoft.Extensions.Primitives;

namespace Gateway.Http;

/// <summary>
/// The HTTP lexical rules the gateway checks by hand, in one place: tokens, field values, optional whitespace, field
/// lines, the end of a head, the status line and comma-separated lists. Allocation-free span checks over bytes (as on
/// the wire) and chars (as in headers already decoded). Depends on nothing else in the gateway.
/// </summary>
internal static class HttpSyntax
{
    /// <summary>RFC 9110 section 5.6.2: tchar = "!" / "#" / "$" / "%" / "&amp;" / "'" / "*" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~" / DIGIT / ALPHA.</summary>
    private const string TokenCharacterList = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

    private static readonly SearchValues<char> TokenChars = SearchValues.Create(TokenCharacterList);
    private static readonly SearchValues<byte> TokenBytes = SearchValues.Create("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"u8);

    // RFC 9110 section 5.5: field-vchar = VCHAR / obs-text, with SP and HTAB between them; no CTL (RFC 5234 B.1).
    private static readonly SearchValues<byte> FieldValueBytes = SearchValues.Create(FieldValueRange(0xFF));
    private static readonly SearchValues<char> FieldValueChars = SearchValues.Create(FieldValueCharRange(0xFF));
    // The same without obs-text: what Kestrel accepts and sends in its default (ASCII) header encoding.
    private static readonly SearchValues<byte> AsciiFieldValueBytes = SearchValues.Create(FieldValueRange(0x7E));
    private static readonly SearchValues<char> AsciiFieldValueChars = SearchValues.Create(FieldValueCharRange(0x7E));

    /// <summary>RFC 9110 section 5.6.3: OWS = *( SP / HTAB ).</summary>
    private const string Whitespace = " \t";

    /// <summary>RFC 9112 section 2.1: each line of a head ends in CRLF.</summary>
    public static ReadOnlySpan<byte> Crlf => "\r\n"u8;

    /// <summary>RFC 9112 section 2.1: the empty line that ends a head, with the CRLF of the last field line before it.</summary>
    public static ReadOnlySpan<byte> HeadEnd => "\r\n\r\n"u8;

    // ---- token (RFC 9110 section 5.6.2) ----

    /// <summary>RFC 9110 section 5.6.2: a tchar.</summary>
    public static bool IsTokenChar(char c) => TokenChars.Contains(c);

    /// <summary>RFC 9110 section 5.6.2: a tchar, as a byte on the wire.</summary>
    public static bool IsTokenChar(byte b) => TokenBytes.Contains(b);

    /// <summary>RFC 9110 section 5.6.2: token = 1*tchar.</summary>
    public static bool IsToken(string? text) => text is not null && IsToken(text.AsSpan());

    /// <inheritdoc cref="IsToken(string?)"/>
    public static bool IsToken(ReadOnlySpan<char> text) => !text.IsEmpty && !text.ContainsAnyExcept(TokenChars);

    /// <summary>RFC 9110 section 5.6.2: token = 1*tchar, on ASCII bytes as a field name arrives on the wire.</summary>
    public static bool IsToken(ReadOnlySpan<byte> text) => !text.IsEmpty && !text.ContainsAnyExcept(TokenBytes);

    // ---- field values (RFC 9110 section 5.5) ----

    /// <summary>RFC 9110 section 5.5: only VCHAR, obs-text, SP and HTAB; no CTL, so no CR, LF or NUL.</summary>
    public static bool IsFieldValue(ReadOnlySpan<byte> value) => !value.ContainsAnyExcept(FieldValueBytes);

    /// <inheritdoc cref="IsFieldValue(ReadOnlySpan{byte})"/>
    public static bool IsFieldValue(ReadOnlySpan<char> value) => !value.ContainsAnyExcept(FieldValueChars);

    /// <summary>
    /// RFC 9110 section 5.5 without obs-text: VCHAR, SP and HTAB only. Kestrel's default header encoding is ASCII, so
    /// the lean path leaves a value with obs-text to Kestrel and never writes one.
    /// </summary>
    public static bool IsAsciiFieldValue(ReadOnlySpan<byte> value) => !value.ContainsAnyExcept(AsciiFieldValueBytes);

    /// <inheritdoc cref="IsAsciiFieldValue(ReadOnlySpan{byte})"/>
    public static bool IsAsciiFieldValue(ReadOnlySpan<char> value) => !value.ContainsAnyExcept(AsciiFieldValueChars);

    // ---- OWS (RFC 9110 section 5.6.3) ----

    /// <summary>RFC 9110 section 5.6.3: the value without the optional whitespace (SP, HTAB) around it.</summary>
    public static ReadOnlySpan<byte> TrimOws(ReadOnlySpan<byte> value) => value.Trim(" \t"u8);

    /// <inheritdoc cref="TrimOws(ReadOnlySpan{byte})"/>
    public static ReadOnlySpan<char> TrimOws(ReadOnlySpan<char> value) => value.Trim(Whitespace);

    // ---- head and field lines (RFC 9112 sections 2.1, 4 and 5) ----

    /// <summary>
    /// RFC 9112 section 2.1: the index of the CRLF CRLF that ends a head, or -1. The head (with its last line's CRLF) is
    /// <c>[..(index + 2)]</c>; what follows it starts at <c>index + HeadEnd.Length</c>.
    /// </summary>
    public static int IndexOfHeadEnd(ReadOnlySpan<byte> buffer) => buffer.IndexOf(HeadEnd);

    /// <summary>
    /// RFC 9112 section 5: <c>field-name ":" OWS field-value OWS</c>, split at the first colon. False when the name is
    /// empty or holds whitespace (section 5.1: none is allowed between the name and the colon; a leading one would make
    /// an obsolete line folding, section 5.2). The name is not checked further: a caller that wants a token checks
    /// <see cref="IsToken(ReadOnlySpan{byte})"/>. The value has its OWS trimmed and is not checked.
    /// </summary>
    public static bool TrySplitFieldLine(ReadOnlySpan<byte> line, out ReadOnlySpan<byte> name, out ReadOnlySpan<byte> value)
    {
        var colon = line.IndexOf((byte)':');
        if (colon <= 0 || line[..colon].ContainsAny((byte)' ', (byte)'\t'))
        {
            name = value = default;
            return false;
        }
        name = line[..colon];
        value = TrimOws(line[(colon + 1)..]);
        return true;
    }

    /// <summary>
    /// RFC 9112 section 4: <c>HTTP-version SP status-code SP [ reason-phrase ]</c> for HTTP/1.x, read leniently as a
    /// client may (section 4: the SP before an empty reason may be missing). <paramref name="minorVersion"/> is the
    /// byte after <c>HTTP/1.</c>; <paramref name="reason"/> is empty when none was sent.
    /// </summary>
    public static bool TryParseStatusLine(ReadOnlySpan<byte> line, out byte minorVersion, out int code, out ReadOnlySpan<byte> reason)
    {
        minorVersion = 0;
        code = 0;
        reason = default;
        // "HTTP/1.1 101 Switching Protocols": version, a three-digit code (no sign), an optional reason.
        if (!line.StartsWith("HTTP/1."u8) || line.Length < 12 || line[8] != (byte)' '
            || !Utf8Parser.TryParse(line.Slice(9, 3), out code, out var digits) || digits != 3
            || !char.IsAsciiDigit((char)line[9]) || code < 100 || (line.Length > 12 && line[12] != (byte)' '))
        {
            code = 0;
            return false;
        }
        minorVersion = line[7];
        reason = line.Length > 13 ? line[13..] : default;
        return true;
    }

    // ---- comma-separated lists (RFC 9110 section 5.6.1) ----

    /// <summary>
    /// RFC 9110 section 5.6.1: true when any element of any of the field's lines, OWS trimmed, equals
    /// <paramref name="token"/>. Read in place: no splitting into new strings.
    /// </summary>
    public static bool ListContains(StringValues values, ReadOnlySpan<char> token, StringComparison comparison = StringComparison.OrdinalIgnoreCase)
    {
        foreach (var value in values)
        {
            if (value is null)
            {
                continue;
            }
            var line = value.AsSpan();
            foreach (var range in line.Split(','))
            {
                if (TrimOws(line[range]).Equals(token, comparison))
                {
                    return true;
                }
            }
        }
        return false;
    }

    /// <summary>RFC 9110 section 5.6.1: the non-empty elements of the field's lines, OWS trimmed, in order (empty ones are skipped, as the RFC asks of a recipient).</summary>
    public static ListEnumerator ListElements(StringValues values) => new(values);

    /// <summary>The elements of a comma-separated list, as spans into the field's own strings.</summary>
    public ref struct ListEnumerator
    {
        private readonly StringValues _values;
        private int _line;
        private string? _current;
        private int _offset;

        public ListEnumerator(StringValues values)
        {
            _values = values;
            _line = -1;
            _current = null;
            _offset = 0;
            Current = default;
        }

        public ReadOnlySpan<char> Current { get; private set; }

        public readonly ListEnumerator GetEnumerator() => this;

        public bool MoveNext()
        {
            while (true)
            {
                if (_current is null || _offset > _current.Length)
                {
                    if (++_line >= _values.Count)
                    {
                        return false;
                    }
                    _current = _values[_line] ?? string.Empty;
                    _offset = 0;
                }
                var rest = _current.AsSpan(_offset);
                var comma = rest.IndexOf(',');
                var element = comma < 0 ? rest : rest[..comma];
                _offset += comma < 0 ? rest.Length + 1 : comma + 1;
                element = TrimOws(element);
                if (!element.IsEmpty)
                {
                    Current = element;
                    return true;
                }
            }
        }
    }

    /// <summary>HTAB, SP, VCHAR (0x21-0x7E) and, with <paramref name="last"/> 0xFF, obs-text (0x80-0xFF).</summary>
    private static byte[] FieldValueRange(int last)
    {
        var bytes = new List<byte> { (byte)'\t' };
        for (var b = 0x20; b <= last; b++)
        {
            if (b != 0x7F)
            {
                bytes.Add((byte)b);
            }
        }
        return [.. bytes];
    }

    private static string FieldValueCharRange(int last) => string.Concat(FieldValueRange(last).Select(b => (char)b));
}
