using System.Net;
using CsCheck;
using Gateway.Proxy;

namespace Gateway.Tests.Proxy;

/// <summary>
/// Proxy/RequestTarget reads the request target, Host value and endpoint from the address string instead of from the
/// Uri: whenever it takes that fast path its answers must be Uri's, and otherwise it must ask the Uri.
/// </summary>
public sealed class RequestTargetTests
{
    private static readonly Gen<string> Scheme = Gen.Frequency(
        (12, Gen.Const("http://")),
        (1, Gen.OneOf("HTTP://", "Http://", " http://", "http:/", "http:///", "https://", "ws://")));

    /// <summary>Mostly plain host labels (the fast path's), now and then with upper case or '_'.</summary>
    private static readonly Gen<string> Label = Gen.Frequency(
        (4, Gen.String[Gen.Char["abcxyz0189-"], 1, 8]),
        (1, Gen.String[Gen.Char["abcxyzAZ0189-_"], 1, 8]));

    private static readonly Gen<string> Host = Gen.Frequency(
        (3, Gen.OneOf(
            "localhost", "backend", "chat-1.internal", "1and1.com", "127.0.0.1", "10.0.0.255", "0.0.0.0", "255.255.255.255",
            "256.1.1.1", "127.1", "127.0.0.01", "0x7f.0.0.1", "0x7f000001", "2130706433", "1.2.3.4.5", "1.2.3.4.com", "a.1",
            "-a", "a-", "a..b", "a.", ".a", "xn--bcher-kva.ch", "Backend", "BACKEND.Local", "[::1]", "[::FFFF:127.0.0.1]",
            "user@h", "user:pw@h", "@h", "a_b", "h%41", "%41h", "a b", "\u00E9.com", "m\u00FCnchen.de", "h\\x", "h#f", "h?q",
            new string('a', 63) + ".com", new string('a', 64) + ".com")),
        (6, Label.Array[1, 4].Select(labels => string.Join('.', labels))));

    private static readonly Gen<string> Port =
        Gen.OneOf("", "", "", ":", ":80", ":080", ":0", ":00", ":8080", ":65535", ":5101", ":443", ":1", ":8o", ":-1");

    /// <summary>Characters Uri escapes, unescapes, converts or stops at, among plain ones.</summary>
    private const string Awkward = "aZ09-._~!$&'()*+,;=:@/?%41#[]\\ \"<>^`{|}\t\u007f\u00E9\u20AC";

    /// <summary>RFC 3986 pchar without '%': what Uri leaves alone.</summary>
    private const string Plain = "azAZ09-._~!$&'()*+,;=:@";

    private static readonly Gen<string> Segment = Gen.Frequency(
        (12, Gen.String[Gen.Char[Plain], 0, 6]),
        (2, Gen.OneOf(
            "", ".", "..", "...", "a.", ".a", "a..", "chat", "raw", "Room", "%41", "%2e", "%2E%2E", "%2F", "a%20b", "{id}",
            "a b", "\u00E9", "~user", "a@b", ":", "a:b", "a;b=c", "'q'", "(x)", "[x]", "a|b", "a^b", "a`b", "\"", "<>", "\\",
            "..\\b", "#f", "\t", "+", "*", "$", "!", ",")),
        (1, Gen.String[Gen.Char[Awkward], 0, 6]));

    private static readonly Gen<string> Path = Gen.Frequency(
        (1, Gen.Const("")),
        (8, Segment.Array[1, 5].Select(segments => "/" + string.Join('/', segments))));

    private static readonly Gen<string> Query = Gen.Frequency(
        (2, Gen.Const("")),
        (1, Gen.OneOf("?", "?x=1", "?room=A&id=2", "?a=/../b", "?q=./.", "?a?b", "?%41", "?a b", "?x#frag", "?{}", "#frag")),
        (2, Gen.String[Gen.Char[Plain + "/?"], 0, 8].Select(query => "?" + query)),
        (1, Gen.String[Gen.Char[Awkward], 0, 8].Select(query => "?" + query)));

    private static readonly Gen<string> Address =
        Gen.Select(Scheme, Host, Port, Path, Query, (scheme, host, port, path, query) => scheme + host + port + path + query);

    [Fact]
    public void The_fast_path_agrees_with_uri_on_generated_addresses()
    {
        long fast = 0, fallback = 0;
        Address.Sample(address =>
        {
            if (!Uri.TryCreate(address, UriKind.Absolute, out var uri))
            {
                return;
            }
            if (RequestTarget.TryParse(address, out var parts))
            {
                Interlocked.Increment(ref fast);
                Assert.Equal(uri.PathAndQuery, parts.PathAndQuery.ToString());
                Assert.Equal(uri.Authority, parts.Authority.ToString());
                Assert.Equal(uri.IdnHost, parts.Host.ToString());
                Assert.Equal(uri.Port, parts.Port);
                Assert.Equal(uri.HostNameType == UriHostNameType.IPv4, parts.IsIPv4);
            }
            else
            {
                Interlocked.Increment(ref fallback);
            }
            AssertAgrees(uri);
        }, iter: 30_000);
        // Both ways must come up often, or the comparison says little.
        Assert.True(fast > 1_000, $"fast path taken {fast} times");
        Assert.True(fallback > 1_000, $"fallback taken {fallback} times");
    }

    [Theory]
    [InlineData("http://127.0.0.1:5101/raw/room?x=1", "/raw/room?x=1", "127.0.0.1:5101", "127.0.0.1", 5101)]
    [InlineData("http://backend:80/chat", "/chat", "backend", "backend", 80)] // Uri drops the default port
    [InlineData("http://backend/", "/", "backend", "backend", 80)]
    [InlineData("http://chat-1.internal:0/a//b/?q=/../x?y", "/a//b/?q=/../x?y", "chat-1.internal:0", "chat-1.internal", 0)]
    [InlineData("http://h/a.b/.c/~d;e=f:g@h!$&'()*+,", "/a.b/.c/~d;e=f:g@h!$&'()*+,", "h", "h", 80)]
    public void Plain_addresses_take_the_fast_path(string address, string pathAndQuery, string authority, string host, int port)
    {
        Assert.True(RequestTarget.TryParse(address, out var parts));
        Assert.Equal(pathAndQuery, parts.PathAndQuery.ToString());
        Assert.Equal(authority, parts.Authority.ToString());
        Assert.Equal(host, parts.Host.ToString());
        Assert.Equal(port, parts.Port);
        AssertAgrees(new Uri(address));
    }

    [Theory]
    [InlineData("http://Backend/chat")] // Uri lower-cases the host
    [InlineData("HTTP://backend/chat")]
    [InlineData("http://backend")] // no path: Uri gives "/"
    [InlineData("http://backend?x=1")]
    [InlineData("http://h/a/./b/../c")]
    [InlineData("http://h/a/..")]
    [InlineData("http://h/a/.")]
    [InlineData("http://h/%41")]
    [InlineData("http://h/a b")]
    [InlineData("http://h/a\\b")]
    [InlineData("http://h/a{b}")]
    [InlineData("http://h/a?b|c")]
    [InlineData("http://h/a#frag")]
    [InlineData("http://h/caf\u00E9")]
    [InlineData("http://h:/")]
    [InlineData("http://h:080/")]
    [InlineData("http://user@h/")]
    [InlineData("http://[::1]:5101/")]
    [InlineData("http://127.1/")]
    [InlineData("http://0x7f.0.0.1/")]
    [InlineData("http://2130706433/")]
    [InlineData("http://xn--bcher-kva.ch/")]
    public void Anything_not_plain_falls_back_to_uri(string address)
    {
        Assert.False(RequestTarget.TryParse(address, out _));
        AssertAgrees(new Uri(address));
    }

    [Fact]
    public void The_endpoint_is_an_ip_endpoint_for_a_literal_and_a_dns_endpoint_for_a_name()
    {
        Assert.Equal(new IPEndPoint(IPAddress.Loopback, 5101), RequestTarget.EndPoint(new Uri("http://127.0.0.1:5101/raw")));
        Assert.Equal(new DnsEndPoint("backend", 80), RequestTarget.EndPoint(new Uri("http://backend/raw")));
        Assert.Equal(new IPEndPoint(IPAddress.IPv6Loopback, 5101), RequestTarget.EndPoint(new Uri("http://[::1]:5101/raw")));
        Assert.Equal(new DnsEndPoint("backend", 80), RequestTarget.EndPoint(new Uri("http://BACKEND/raw")));
    }

    /// <summary>The accessors, fast or not, give what Uri gives (the endpoint as the connector built it from Uri).</summary>
    private static void AssertAgrees(Uri uri)
    {
        Assert.Equal(uri.PathAndQuery, RequestTarget.PathAndQuery(uri).ToString());
        Assert.Equal(uri.Authority, RequestTarget.Authority(uri).ToString());
        EndPoint expected = IPAddress.TryParse(uri.IdnHost, out var address)
            ? new IPEndPoint(address, uri.Port)
            : new DnsEndPoint(uri.IdnHost, uri.Port);
        Assert.Equal(expected, RequestTarget.EndPoint(uri));
    }
}
