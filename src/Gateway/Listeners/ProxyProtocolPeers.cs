using Gateway.Configuration;
using System.Net;

namespace Gateway.Listeners;

internal enum PeerTrust
{
    /// <summary>Not a balancer: closed before a byte is read.</summary>
    None,

    /// <summary>
    /// A loopback peer outside the trusted networks: the gateway's own warm-up, which sends a LOCAL header. It may send
    /// a header that names no client (the connection's own address stands), never one that names another address.
    /// </summary>
    LocalOnly,

    /// <summary>A balancer: its header's client address replaces its own.</summary>
    Full,
}

/// <summary>
/// <c>Gateway:Listeners:NAME:ProxyProtocolTrustedNetworks</c>: the peers whose PROXY header is believed, as nginx's
/// <c>set_real_ip_from</c>. Without the list, only loopback (a balancer on the same host). A header is only as true as
/// whoever sent it: a client that reaches the listener directly must not choose the address its limits count against.
/// </summary>
internal sealed class ProxyProtocolPeers
{
    private static readonly IPNetwork[] Loopback = [IPNetwork.Parse("127.0.0.0/8"), IPNetwork.Parse("::1/128")];

    private readonly IPNetwork[] _networks;

    private ProxyProtocolPeers(IPNetwork[] networks, string description, string configKey)
    {
        _networks = networks;
        Description = description;
        NotTrustedDetail = $"the peer is not in {configKey}";
    }

    /// <summary>The trusted networks, for the startup log.</summary>
    public string Description { get; }

    /// <summary>The log's detail for a refused peer (a constant: refusing allocates nothing).</summary>
    public string NotTrustedDetail { get; }

    /// <summary>From the configured list, validated at load (an empty list: loopback).</summary>
    public static ProxyProtocolPeers From(IReadOnlyList<string> configured, string configKey)
    {
        var networks = new List<IPNetwork>();
        foreach (var entry in configured)
        {
            NetworkSyntax.TryParse(entry, out var network);
            networks.Add(network);
        }
        if (networks.Count == 0)
        {
            networks.AddRange(Loopback);
        }
        return new ProxyProtocolPeers(networks.ToArray(), string.Join(", ", networks), configKey);
    }

    public PeerTrust Of(EndPoint? peer)
    {
        if (peer is not IPEndPoint { Address: var address })
        {
            return PeerTrust.None;
        }
        // A dual-stack listener sees IPv4 peers as IPv4-mapped IPv6 addresses.
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }
        foreach (var network in _networks)
        {
            if (network.Contains(address))
            {
                return PeerTrust.Full;
            }
        }
        return IPAddress.IsLoopback(address) ? PeerTrust.LocalOnly : PeerTrust.None;
    }
}
