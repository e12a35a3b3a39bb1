using System.Text;
using Gateway.LoadBalancing;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Primitives;

namespace Gateway.Tests.LoadBalancing;

/// <summary>Where a key is found in a request, how it is decoded, and the hash every replica must compute alike.</summary>
public sealed class HashKeyTests
{
    private static HashKey Key(string text)
    {
        Assert.True(HashKey.TryParse(text, out var key, out var error), error);
        return key;
    }

    private static ulong? Hash(string key, Action<HttpRequest> request)
    {
        var context = new DefaultHttpContext();
        request(context.Request);
        return Key(key).TryHash(context, out var hash) ? hash : null;
    }

    [Fact]
    public void Every_source_finds_its_key_and_decodes_it_as_aspnetcore_would()
    {
        var expected = StableHash.Of("blue room");

        Assert.Equal(expected, Hash("route:room", r => r.RouteValues["room"] = "blue room"));
        Assert.Equal(expected, Hash("ROUTE:room", r => r.RouteValues["Room"] = "blue room"));
        Assert.Equal(expected, Hash("header:X-Room", r => r.Headers["x-room"] = "blue room"));
        Assert.Equal(expected, Hash("header:X-Room", r => r.Headers["X-Room"] = new StringValues(["blue room", "red"])));
        // Query: the first parameter of that name (case-insensitive), '+' and %XX decoded; look-alike names skipped.
        Assert.Equal(expected, Hash("query:room", r => r.QueryString = new QueryString("?xroom=red&rooms=red&Room=blue+room&room=green")));
        Assert.Equal(expected, Hash("query:room", r => r.QueryString = new QueryString("?flag&room=blue%20r%6Fom")));
        Assert.Equal(StableHash.Of("café"), Hash("query:room", r => r.QueryString = new QueryString("?room=caf%C3%A9")));
        Assert.Equal(StableHash.Of("100%"), Hash("query:room", r => r.QueryString = new QueryString("?room=100%")));
        // Cookie: in any Cookie header (HTTP/2 may split them), quotes not part of the value.
        Assert.Equal(expected, Hash("cookie:room", r => r.Headers.Cookie = "rooms=red; theme=dark;room=\"blue room\""));
        Assert.Equal(expected, Hash("cookie:room", r => r.Headers.Cookie = new StringValues(["theme=dark", "room=blue room"])));
    }

    [Fact]
    public void A_request_without_the_key_or_with_an_empty_one_has_none()
    {
        Assert.Null(Hash("route:room", _ => { }));
        Assert.Null(Hash("route:room", r => r.RouteValues["room"] = ""));
        Assert.Null(Hash("header:X-Room", r => r.Headers["X-Rooms"] = "red"));
        Assert.Null(Hash("header:X-Room", r => r.Headers["X-Room"] = ""));
        Assert.Null(Hash("query:room", r => r.QueryString = new QueryString("?rooms=red&aroom=red")));
        Assert.Null(Hash("query:room", r => r.QueryString = new QueryString("?room=&room=red")));
        Assert.Null(Hash("query:room", r => r.QueryString = new QueryString("?room")));
        Assert.Null(Hash("query:room", _ => { }));
        Assert.Null(Hash("cookie:room", r => r.Headers.Cookie = "rooms=red; myroom=red; =red"));
        Assert.Null(Hash("cookie:room", r => r.Headers.Cookie = "room=\"\""));
        Assert.Null(Hash("cookie:room", _ => { }));
    }

    [Theory]
    [InlineData("", 0xcbf29ce484222325)]
    [InlineData("a", 0xaf63dc4c8601ec8c)]
    [InlineData("foobar", 0x85944171f73967e8)]
    public void The_hash_starts_as_FNV_1a_64_with_its_published_test_vectors(string text, ulong expected)
    {
        var hash = StableHash.Create();
        hash.AppendUtf8(text);
        Assert.Equal(expected, hash.Fnv1a);
    }

    /// <summary>
    /// Gateways of two versions run side by side during a rolling upgrade: a change to the hash would send one room
    /// to two backends. This value may change only with a note in the README.
    /// </summary>
    [Fact]
    public void The_hash_of_a_key_never_changes()
    {
        Assert.Equal(0xb4eaf00bb6c1c767UL, StableHash.Of("lobby"));
    }

    [Fact]
    public void Long_and_non_ascii_keys_hash_their_utf8_bytes_whatever_the_chunking()
    {
        // Longer than the 128-byte stack buffer, with surrogate pairs falling across its edges, and a lone surrogate.
        var text = string.Concat(Enumerable.Repeat("raum-é-😀-", 50)) + "\ud800!";
        var bytes = StableHash.Create();
        bytes.Append(Encoding.UTF8.GetBytes(text));
        Assert.Equal(bytes.Finish(), StableHash.Of(text));
        Assert.NotEqual(StableHash.Of("room1"), StableHash.Of("room2"));
    }
}
