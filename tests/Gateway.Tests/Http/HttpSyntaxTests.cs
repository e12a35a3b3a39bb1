using System.Text;
using CsCheck;
using Gateway.Http;
using Microsoft.Extensions.Primitives;

namespace Gateway.Tests.Http;

public sealed class HttpSyntaxTests
{
    /// <summary>RFC 9110 section 5.6.2 written out as the grammar reads, independent of the gateway's table.</summary>
    private static bool RfcTchar(int c) =>
        c is >= 'a' and <= 'z' or >= 'A' and <= 'Z' or >= '0' and <= '9'
        || "!#$%&'*+-.^_`|~".Contains((char)c, StringComparison.Ordinal);

    /// <summary>RFC 9110 section 5.5 (field-vchar, SP, HTAB) over RFC 5234's VCHAR and obs-text = %x80-FF.</summary>
    private static bool RfcFieldValueChar(int c) => c == ' ' || c == '\t' || c is >= 0x21 and <= 0x7E || c is >= 0x80 and <= 0xFF;

    [Fact]
    public void Token_char_agrees_with_the_rfc_for_every_byte_and_latin1_char()
    {
        for (var c = 0; c <= 0xFF; c++)
        {
            Assert.Equal(RfcTchar(c), HttpSyntax.IsTokenChar((byte)c));
            Assert.Equal(RfcTchar(c), HttpSyntax.IsTokenChar((char)c));
            Assert.Equal(RfcTchar(c), HttpSyntax.IsToken([(byte)c]));
            Assert.Equal(RfcTchar(c), HttpSyntax.IsToken(((char)c).ToString()));
        }
        Assert.False(HttpSyntax.IsTokenChar('\u0100'));
        Assert.False(HttpSyntax.IsTokenChar('\uFF21')); // a fullwidth 'A' is no ALPHA
    }

    [Fact]
    public void Token_agrees_with_the_rfc_on_generated_strings()
    {
        // Mostly tchar, with any byte now and then, so both answers come up often.
        var character = Gen.Frequency((6, Gen.OneOf("!#$%&'*+-.^_`|~0123456789azAZ".ToCharArray())), (1, Gen.Char[(char)0, (char)0x1FF]));
        character.Array[0, 12].Sample(chars =>
        {
            var text = new string(chars);
            var expected = chars.Length > 0 && chars.All(c => RfcTchar(c));
            Assert.Equal(expected, HttpSyntax.IsToken(text));
            Assert.Equal(expected, HttpSyntax.IsToken(text.AsSpan()));
            if (chars.All(c => c <= 0xFF))
            {
                Assert.Equal(expected, HttpSyntax.IsToken(Encoding.Latin1.GetBytes(text)));
            }
        });
    }

    [Fact]
    public void Empty_and_null_are_no_token()
    {
        Assert.False(HttpSyntax.IsToken((string?)null));
        Assert.False(HttpSyntax.IsToken(string.Empty));
        Assert.False(HttpSyntax.IsToken(ReadOnlySpan<byte>.Empty));
        Assert.True(HttpSyntax.IsToken("Sec-WebSocket-Protocol"u8));
        Assert.False(HttpSyntax.IsToken("chat v2"));
    }

    [Fact]
    public void Field_value_characters_agree_with_the_rfc_for_every_byte_and_latin1_char()
    {
        for (var c = 0; c <= 0xFF; c++)
        {
            Assert.Equal(RfcFieldValueChar(c), HttpSyntax.IsFieldValue([(byte)c]));
            Assert.Equal(RfcFieldValueChar(c), HttpSyntax.IsFieldValue([(char)c]));
            var ascii = RfcFieldValueChar(c) && c < 0x80;
            Assert.Equal(ascii, HttpSyntax.IsAsciiFieldValue([(byte)c]));
            Assert.Equal(ascii, HttpSyntax.IsAsciiFieldValue([(char)c]));
        }
        Assert.False(HttpSyntax.IsFieldValue("caf\u20AC")); // not one octet
        Assert.True(HttpSyntax.IsFieldValue(ReadOnlySpan<byte>.Empty));
        Assert.False(HttpSyntax.IsAsciiFieldValue("a\r\nX-Injected: 1"));
    }

    [Theory]
    [InlineData(" \t value \t", "value")]
    [InlineData("a b", "a b")]
    [InlineData(" \t ", "")]
    [InlineData("\u00A0x\u00A0", "\u00A0x\u00A0")] // only SP and HTAB are OWS
    public void Ows_trims_only_space_and_tab(string value, string expected)
    {
        Assert.Equal(expected, HttpSyntax.TrimOws(value.AsSpan()).ToString());
        Assert.Equal(expected, Encoding.Latin1.GetString(HttpSyntax.TrimOws(Encoding.Latin1.GetBytes(value))));
    }

    [Theory]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\n\r\nrest", 23)]
    [InlineData("GET / HTTP/1.1\r\nHost: a\r\n", -1)]
    [InlineData("GET / HTTP/1.1\n\nHost: a\r\n\n", -1)] // bare LFs end nothing here
    [InlineData("\r\n\r\n", 0)]
    public void Head_end_is_the_first_crlf_crlf(string buffer, int expected)
    {
        Assert.Equal(expected, HttpSyntax.IndexOfHeadEnd(Encoding.ASCII.GetBytes(buffer)));
        Assert.Equal(4, HttpSyntax.HeadEnd.Length);
    }

    [Theory]
    [InlineData("Host: example.com ", true, "Host", "example.com")]
    [InlineData("X-Empty:", true, "X-Empty", "")]
    [InlineData("X-Colons: a:b", true, "X-Colons", "a:b")]
    [InlineData(": no name", false, null, null)]
    [InlineData("no colon", false, null, null)]
    [InlineData("Host : a", false, null, null)] // RFC 9112 section 5.1: no whitespace before the colon
    [InlineData(" Host: a", false, null, null)] // obs-fold
    [InlineData("\tHost: a", false, null, null)]
    public void Field_line_splits_at_the_first_colon(string line, bool ok, string? name, string? value)
    {
        Assert.Equal(ok, HttpSyntax.TrySplitFieldLine(Encoding.ASCII.GetBytes(line), out var n, out var v));
        if (ok)
        {
            Assert.Equal(name, Encoding.ASCII.GetString(n));
            Assert.Equal(value, Encoding.ASCII.GetString(v));
        }
    }

    [Theory]
    [InlineData("HTTP/1.1 101 Switching Protocols", true, '1', 101, "Switching Protocols")]
    [InlineData("HTTP/1.0 403 ", true, '0', 403, "")]
    [InlineData("HTTP/1.1 204", true, '1', 204, "")]
    [InlineData("HTTP/1.1 099 Low", false, '\0', 0, "")]
    [InlineData("HTTP/1.1 +99 Sign", false, '\0', 0, "")]
    [InlineData("HTTP/1.1 1011 Long", false, '\0', 0, "")]
    [InlineData("HTTP/2 101 No", false, '\0', 0, "")]
    [InlineData("HTTP/1.1  101 Two spaces", false, '\0', 0, "")]
    public void Status_line(string line, bool ok, char minor, int code, string reason)
    {
        Assert.Equal(ok, HttpSyntax.TryParseStatusLine(Encoding.ASCII.GetBytes(line), out var m, out var c, out var r));
        Assert.Equal((byte)minor, m);
        Assert.Equal(code, c);
        Assert.Equal(reason, Encoding.ASCII.GetString(r));
    }

    [Fact]
    public void List_elements_are_trimmed_non_empty_and_in_order_across_lines()
    {
        var values = new StringValues(["chat, , \tsuperchat ,", null!, ",v2"]);
        var seen = new List<string>();
        foreach (var element in HttpSyntax.ListElements(values))
        {
            seen.Add(element.ToString());
        }
        Assert.Equal(["chat", "superchat", "v2"], seen);
        Assert.False(HttpSyntax.ListElements(StringValues.Empty).MoveNext());
    }

    [Fact]
    public void List_contains_compares_whole_elements()
    {
        var connection = new StringValues(["keep-alive, Upgrade", "close"]);
        Assert.True(HttpSyntax.ListContains(connection, "upgrade"));
        Assert.True(HttpSyntax.ListContains(connection, "close"));
        Assert.False(HttpSyntax.ListContains(connection, "upgrade", StringComparison.Ordinal));
        Assert.False(HttpSyntax.ListContains(connection, "keep"));
        Assert.False(HttpSyntax.ListContains("upgrade2", "upgrade"));
        Assert.True(HttpSyntax.ListContains(" \tupgrade\t ", "upgrade"));
    }

    [Fact]
    public void List_contains_agrees_with_list_elements_on_generated_lists()
    {
        var element = Gen.OneOf("a", "B", "ab", "", " ", "\t", " a ", "b\t");
        Gen.Select(element.Array[0, 6], Gen.OneOf("a", "b", "ab")).Sample((parts, token) =>
        {
            var line = string.Join(",", parts);
            var any = false;
            foreach (var e in HttpSyntax.ListElements(line))
            {
                any |= e.Equals(token, StringComparison.OrdinalIgnoreCase);
            }
            Assert.Equal(any, HttpSyntax.ListContains(line, token));
        });
    }
}
