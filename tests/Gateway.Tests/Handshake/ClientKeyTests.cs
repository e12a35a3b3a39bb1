using System.Net;
using Gateway.Handshake;

namespace Gateway.Tests.Handshake;

/// <summary>Whom a per-client limit counts: IPv4 per address, IPv6 per network of the policy's prefix length.</summary>
public sealed class ClientKeyTests
{
    private static ClientKey Key(string address, int prefix = ClientKey.DefaultIPv6PrefixLength) =>
        ClientKey.From(IPAddress.Parse(address), prefix);

    [Fact]
    public void IPv6_addresses_in_one_64_share_a_key_and_another_64_has_its_own()
    {
        Assert.Equal(Key("2001:db8:1:1::1"), Key("2001:db8:1:1::2"));
        Assert.Equal(Key("2001:db8:1:1::1"), Key("2001:db8:1:1:ffff:ffff:ffff:ffff"));
        Assert.NotEqual(Key("2001:db8:1:1::1"), Key("2001:db8:1:2::1"));
        Assert.NotEqual(Key("2001:db8:1:1::1"), Key("2001:db9:1:1::1"));
    }

    [Theory]
    [InlineData(128, "2001:db8:1:1::1", "2001:db8:1:1::2", false)]
    [InlineData(128, "2001:db8:1:1::1", "2001:db8:1:1::1", true)]
    [InlineData(56, "2001:db8:1:1::1", "2001:db8:1:ff::1", true)]
    [InlineData(56, "2001:db8:1:1::1", "2001:db8:1:100::1", false)]
    [InlineData(48, "2001:db8:1:1::1", "2001:db8:1:ffff::1", true)]
    [InlineData(1, "2001:db8::1", "7fff::1", true)]
    [InlineData(1, "2001:db8::1", "8000::1", false)]
    public void The_prefix_length_decides_which_IPv6_addresses_count_as_one_client(int prefix, string a, string b, bool same)
    {
        Assert.Equal(same, Key(a, prefix) == Key(b, prefix));
    }

    [Fact]
    public void IPv4_counts_per_address_whether_plain_mapped_or_behind_the_well_known_NAT64_prefix()
    {
        Assert.NotEqual(Key("203.0.113.1"), Key("203.0.113.2"));
        Assert.Equal(Key("203.0.113.1"), Key("::ffff:203.0.113.1"));
        Assert.NotEqual(Key("::ffff:203.0.113.1"), Key("::ffff:203.0.113.2"));
        // RFC 6052: every IPv4 client of a translator shares 64:ff9b::/96; a /64 cut would make them one client.
        Assert.NotEqual(Key("64:ff9b::203.0.113.1"), Key("64:ff9b::203.0.113.2"));
        Assert.Equal(Key("203.0.113.1"), Key("64:ff9b::203.0.113.1"));
        // An IPv6 network never shares a key with an IPv4 address.
        Assert.NotEqual(Key("::"), Key("0.0.0.0"));
        Assert.NotEqual(Key("::203.0.113.1", 128), Key("203.0.113.1"));
    }

    [Fact]
    public void Building_a_key_allocates_nothing()
    {
        var v6 = IPAddress.Parse("2001:db8:1:1::1");
        var v4 = IPAddress.Parse("203.0.113.1");
        var mapped = IPAddress.Parse("::ffff:203.0.113.1");
        var sink = ClientKey.From(v6, 64).Bits ^ ClientKey.From(v4, 64).Bits ^ ClientKey.From(mapped, 64).Bits;

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1000; i++)
        {
            sink ^= ClientKey.From(v6, 64).Bits ^ ClientKey.From(v4, 64).Bits ^ ClientKey.From(mapped, 64).Bits;
        }
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        GC.KeepAlive(sink);
    }
}
