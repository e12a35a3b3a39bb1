using System.Buffers;
using System.Text;
using Gateway.Listeners.LeanHttp1;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Gateway.Tests.Listeners.LeanHttp1;

/// <summary>
/// Which request heads the lean HTTP/1.1 path takes: a plain WebSocket upgrade it parses itself; anything else, or
/// anything it is not sure of, it leaves to Kestrel (null), which then answers as it always has.
/// </summary>
public sealed class LeanRequestHeadTests
{
    private const string Upgrade =
        "GET /chat/room?x=1&y=2 HTTP/1.1\r\nHost: gw.example:8443\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: https://app.example\r\n" +
        "X-Custom: a\r\nx-custom: b\r\n\r\n";

    private static readonly KestrelServerLimits Limits = new();

    [Fact]
    public void A_plain_upgrade_is_taken_with_its_target_and_headers()
    {
        var head = Parse(Upgrade + "first frame bytes", out var end, out var buffer);

        Assert.NotNull(head);
        Assert.Equal("/chat/room", head.Path);
        Assert.Equal("?x=1&y=2", head.QueryString);
        Assert.Equal("/chat/room?x=1&y=2", head.RawTarget);
        Assert.Equal("gw.example:8443", head.Headers["Host"].ToString());
        Assert.Equal("websocket", head.Headers["Upgrade"].ToString());
        Assert.Equal("dGhlIHNhbXBsZSBub25jZQ==", head.Headers["Sec-WebSocket-Key"].ToString());
        Assert.Equal("https://app.example", head.Headers["Origin"].ToString());
        Assert.Equal(new[] { "a", "b" }, head.Headers["X-Custom"].ToArray());
        // Only the head is consumed: what follows it is the tunnel's.
        Assert.Equal("first frame bytes", Encoding.ASCII.GetString(buffer.Slice(end).ToArray()));
    }

    [Theory]
    [InlineData("Upgrade", "Upgrade", false)]
    [InlineData("UPGRADE", "Upgrade", false)]
    [InlineData("upgrade, x-unknown", "Upgrade", false)]
    [InlineData("keep-alive, Upgrade", "keep-alive, Upgrade", false)]
    [InlineData("Upgrade, close", "Upgrade, close", true)]
    [InlineData("CLOSE ,upgrade", "CLOSE ,upgrade", true)]
    public void Connection_is_read_and_forwarded_as_Kestrel_does(string connection, string forwarded, bool close)
    {
        var head = Parse(Upgrade.Replace("Connection: Upgrade", "Connection: " + connection), out _, out _);

        Assert.NotNull(head);
        // Kestrel replaces a Connection naming only "upgrade" (of the options it knows) with its own "Upgrade".
        Assert.Equal(forwarded, head.Headers["Connection"].ToString());
        Assert.Equal(close, head.Close);
    }

    [Fact]
    public void Headers_are_named_and_ordered_as_Kestrel_gives_them()
    {
        var head = Parse(
            "GET /chat HTTP/1.1\r\nx-custom: 1\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nORIGIN: https://app.example\r\n" +
            "upgrade: websocket\r\nX-FORWARDED-FOR: 1.2.3.4\r\nconnection: Upgrade\r\nhost: gw.example\r\nuser-agent: t\r\n\r\n", out _, out _);

        Assert.NotNull(head);
        // The names Kestrel knows first, in its order; then the others as they came, a framework name spelled its way.
        Assert.Equal(["Connection", "Host", "User-Agent", "Origin", "Upgrade", "x-custom", "Sec-WebSocket-Key", "X-FORWARDED-FOR"],
            head.Headers.Keys.ToArray());
    }

    [Fact]
    public void A_head_split_over_buffer_segments_is_taken_too()
    {
        var bytes = Encoding.ASCII.GetBytes(Upgrade);
        var buffer = Segments(bytes, 7);
        var head = LeanRequestHead.TryParse(buffer, Limits, out var end);

        Assert.NotNull(head);
        Assert.Equal(bytes.Length, buffer.Slice(0, end).Length);
        Assert.Equal("/chat/room", head.Path);
    }

    public static TheoryData<string, string> LeftToKestrel => new()
    {
        { "not whole yet", Upgrade[..^2] },
        { "not a GET", Upgrade.Replace("GET ", "POST ") },
        { "HTTP/1.0", Upgrade.Replace("HTTP/1.1\r\n", "HTTP/1.0\r\n") },
        { "absolute-form target", Upgrade.Replace("GET /chat", "GET http://gw.example/chat") },
        { "asterisk target", Upgrade.Replace("GET /chat/room?x=1&y=2", "GET *") },
        { "percent-encoding", Upgrade.Replace("/chat/room", "/chat/r%6Fom") },
        { "dot segment", Upgrade.Replace("/chat/room", "/chat/../room") },
        { "empty segment", Upgrade.Replace("/chat/room", "/chat//room") },
        { "HTAB inside Connection (Kestrel reads only SP around its elements)", Upgrade.Replace("Connection: Upgrade", "Connection: keep-alive,\tUpgrade") },
        { "fragment", Upgrade.Replace("?x=1&y=2", "#top") },
        { "non-ASCII target", Upgrade.Replace("/chat/room", "/chat/r\u00f6om") },
        { "two spaces", Upgrade.Replace("GET /chat", "GET  /chat") },
        { "no Host", Upgrade.Replace("Host: gw.example:8443\r\n", "") },
        { "two Hosts", Upgrade.Replace("Host: gw.example:8443\r\n", "Host: a\r\nHost: b\r\n") },
        { "Host with user info", Upgrade.Replace("Host: gw.example:8443", "Host: user@gw.example") },
        { "Host with a bad port", Upgrade.Replace("Host: gw.example:8443", "Host: gw.example:99999") },
        { "Host with two colons", Upgrade.Replace("Host: gw.example:8443", "Host: gw.example:1:2") },
        { "empty Host", Upgrade.Replace("Host: gw.example:8443", "Host: ") },
        { "Content-Length", Upgrade.Replace("X-Custom: a\r\n", "Content-Length: 5\r\n") },
        { "Transfer-Encoding", Upgrade.Replace("X-Custom: a\r\n", "Transfer-Encoding: chunked\r\n") },
        { "no Upgrade", Upgrade.Replace("Upgrade: websocket\r\n", "") },
        { "another protocol", Upgrade.Replace("Upgrade: websocket", "Upgrade: h2c") },
        { "Connection without upgrade", Upgrade.Replace("Connection: Upgrade", "Connection: keep-alive") },
        { "obs-fold", Upgrade.Replace("X-Custom: a\r\n", "X-Custom: a\r\n  continued\r\n") },
        { "space before the colon", Upgrade.Replace("X-Custom: a", "X-Custom : a") },
        { "no colon", Upgrade.Replace("X-Custom: a", "X-Custom a") },
        { "control character in a value", Upgrade.Replace("X-Custom: a", "X-Custom: a\u0001b") },
        { "obs-text in a value", Upgrade.Replace("X-Custom: a", "X-Custom: caf\u00e9") },
        { "bare LF line end", Upgrade.Replace("X-Custom: a\r\n", "X-Custom: a\nX-Other: c\r\n") },
    };

    [Theory]
    [MemberData(nameof(LeftToKestrel))]
    public void Anything_else_is_left_to_Kestrel(string why, string text)
    {
        Assert.True(Parse(text, out _, out _) is null, $"{why}: the lean path took a head it should leave to Kestrel");
    }

    [Fact]
    public void Heads_over_Kestrels_limits_are_left_to_Kestrel_which_answers_414_or_431()
    {
        var limits = new KestrelServerLimits { MaxRequestLineSize = 64, MaxRequestHeaderCount = 8, MaxRequestHeadersTotalSize = 4096 };
        Assert.NotNull(LeanRequestHead.TryParse(Sequence(Upgrade), limits, out _));

        var longLine = Upgrade.Replace("/chat/room", "/chat/" + new string('r', 64));
        Assert.Null(LeanRequestHead.TryParse(Sequence(longLine), limits, out _));

        var manyHeaders = Upgrade.Replace("X-Custom: a\r\n", "X-A: 1\r\nX-B: 2\r\n");
        Assert.Null(LeanRequestHead.TryParse(Sequence(manyHeaders), limits, out _));

        var bigHeaders = Upgrade.Replace("X-Custom: a", "X-Custom: " + new string('a', 4096));
        Assert.Null(LeanRequestHead.TryParse(Sequence(bigHeaders), new KestrelServerLimits { MaxRequestHeadersTotalSize = 4096 }, out _));
    }

    [Theory]
    [InlineData("gw.example", true)]
    [InlineData("127.0.0.1:80", true)]
    [InlineData("[::1]:443", true)]
    [InlineData("[::1]", true)]
    [InlineData("[::1", false)]
    [InlineData("gw.example:", false)]
    [InlineData("gw.example:0x50", false)]
    [InlineData("gw example", false)]
    [InlineData("gw.example:65536", false)]
    public void Hosts_in_their_plain_forms_only(string host, bool taken)
    {
        Assert.Equal(taken, LeanRequestHead.IsSimpleHost(Encoding.ASCII.GetBytes(host)));
    }

    private static LeanRequestHead? Parse(string text, out SequencePosition end, out ReadOnlySequence<byte> buffer)
    {
        buffer = Sequence(text);
        return LeanRequestHead.TryParse(buffer, Limits, out end);
    }

    private static ReadOnlySequence<byte> Sequence(string text) => new(Encoding.Latin1.GetBytes(text));

    private static ReadOnlySequence<byte> Segments(byte[] bytes, int size)
    {
        Segment? first = null, last = null;
        for (var i = 0; i < bytes.Length; i += size)
        {
            var next = new Segment(bytes.AsMemory(i, Math.Min(size, bytes.Length - i)), last);
            first ??= next;
            last = next;
        }
        return new ReadOnlySequence<byte>(first!, 0, last!, last!.Memory.Length);
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(ReadOnlyMemory<byte> memory, Segment? previous)
        {
            Memory = memory;
            if (previous is not null)
            {
                RunningIndex = previous.RunningIndex + previous.Memory.Length;
                previous.Next = this;
            }
        }
    }
}
