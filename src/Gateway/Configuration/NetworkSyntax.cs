using System.Net;
using System.Net.Sockets;

namespace Gateway.Configuration;

/// <summary>How the file names a network: CIDR (<c>10.0.0.0/8</c>, <c>2001:db8::/32</c>) or one address (a /32 or /128).</summary>
internal static class NetworkSyntax
{
    public static bool TryParse(string text, out IPNetwork network)
    {
        text = text.Trim();
        if (text.Contains('/'))
        {
            return IPNetwork.TryParse(text, out network);
        }
        if (IPAddress.TryParse(text, out var address))
        {
            network = new IPNetwork(address, address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128);
            return true;
        }
        network = default;
        return false;
    }
}
