using System.Net;
using System.Net.Sockets;
using Gateway.Configuration;

namespace Gateway.Proxy;

/// <summary>
/// The configured source addresses for backend connections, handed out in turn per address family: an Interlocked
/// counter per family, so concurrent handshakes take no lock. A destination of a family with no source address is
/// connected as without the setting (the kernel chooses), since destinations reload and host names may resolve to
/// either family; the README says so.
/// </summary>
internal sealed class SourceAddresses
{
    public static readonly SourceAddresses None = new([]);

    private readonly IPAddress[] _v4;
    private readonly IPAddress[] _v6;
    private uint _nextV4;
    private uint _nextV6;

    public SourceAddresses(IEnumerable<IPAddress> addresses)
    {
        var all = addresses.ToArray();
        _v4 = all.Where(a => a.AddressFamily == AddressFamily.InterNetwork).ToArray();
        _v6 = all.Where(a => a.AddressFamily == AddressFamily.InterNetworkV6).ToArray();
        Description = all.Length == 0 ? "the kernel's choice" : string.Join(", ", all.Select(a => a.ToString()));
    }

    public bool IsEmpty => _v4.Length == 0 && _v6.Length == 0;

    /// <summary>The addresses, for log lines.</summary>
    public string Description { get; }

    /// <summary>Already validated at load (<see cref="Validate"/>).</summary>
    public static SourceAddresses From(UpstreamOptions options) =>
        options.SourceAddresses.Count == 0 ? None : new(options.SourceAddresses.Select(IPAddress.Parse));

    /// <summary>The addresses of <paramref name="family"/> and the index to start from: the next in turn.</summary>
    public (IPAddress[] Addresses, int Start) Next(AddressFamily family)
    {
        if (family == AddressFamily.InterNetwork && _v4.Length > 0)
        {
            return (_v4, (int)((Interlocked.Increment(ref _nextV4) - 1) % (uint)_v4.Length));
        }
        if (family == AddressFamily.InterNetworkV6 && _v6.Length > 0)
        {
            return (_v6, (int)((Interlocked.Increment(ref _nextV6) - 1) % (uint)_v6.Length));
        }
        return ([], 0);
    }

    /// <summary>Each entry a unicast address of this machine, written plainly, listed once; throws naming the entry's key.</summary>
    internal static void Validate(UpstreamOptions options)
    {
        var seen = new HashSet<IPAddress>();
        for (var i = 0; i < options.SourceAddresses.Count; i++)
        {
            var key = $"{GatewayOptions.SectionName}:Upstream:SourceAddresses:{i}";
            var text = options.SourceAddresses[i]?.Trim() ?? string.Empty;
            // IPAddress.TryParse takes "127.2" and "1" as IPv4 too: only a dotted quad or an IPv6 address is meant here.
            if (!IPAddress.TryParse(text, out var address)
                || address.AddressFamily == AddressFamily.InterNetwork && text.Count(c => c == '.') != 3)
            {
                throw new GatewayConfigurationException(key, $"'{text}' is not an IP address");
            }
            if (address.IsIPv4MappedToIPv6)
            {
                throw new GatewayConfigurationException(key, $"'{text}' is an IPv4 address in IPv6 form; write it as {address.MapToIPv4()}");
            }
            if (address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any) || address.Equals(IPAddress.Broadcast)
                || address.IsIPv6Multicast || address.AddressFamily == AddressFamily.InterNetwork && address.GetAddressBytes()[0] is >= 224 and <= 239)
            {
                throw new GatewayConfigurationException(key, $"'{text}' is not a unicast address (a wildcard means the kernel's choice: leave the list empty)");
            }
            if (!seen.Add(address))
            {
                throw new GatewayConfigurationException(key, $"'{text}' is listed twice");
            }
            ProbeBind(address, key, text);
        }
    }

    /// <summary>A typo or an address this machine does not have would fail every backend connection; say so at load.</summary>
    private static void ProbeBind(IPAddress address, string key, string text)
    {
        using var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            SourceBinding.Bind(socket, address);
        }
        catch (SocketException ex)
        {
            var reason = ex.SocketErrorCode == SocketError.AddressNotAvailable ? "is not an address of this machine" : $"cannot be bound: {ex.Message}";
            throw new GatewayConfigurationException(key, $"'{text}' {reason}", ex);
        }
    }
}
