using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Gateway.Tls;

/// <summary>
/// Picks the server certificate by SNI host name. Each certificate's context (with its chain) is built once, when the
/// selector is, and so are the TLS options per certificate and ALPN list: a handshake allocates nothing here. A selector
/// never changes; a certificate reload builds a new one (<see cref="CertificateStore"/>).
/// </summary>
internal sealed class ServerCertificateSelector
{
    /// <summary>TLS 1.2 and 1.3 only: older versions are broken and browsers dropped them.</summary>
    public const SslProtocols EnabledProtocols = SslProtocols.Tls12 | SslProtocols.Tls13;

    private readonly IReadOnlyList<LoadedCertificate> _certificates;

    /// <summary>One table per ALPN list, indexed by <see cref="AlpnSet"/>.</summary>
    private readonly SniTable[] _tables;

    public ServerCertificateSelector(IReadOnlyList<LoadedCertificate> certificates)
    {
        if (certificates.Count == 0)
        {
            throw new ArgumentException("at least one certificate is needed", nameof(certificates));
        }
        _certificates = certificates;
        var contexts = certificates
            .Select(c => SslStreamCertificateContext.Create(c.Certificate, c.Intermediates, offline: true))
            .ToArray();
        _tables = new SniTable[4];
        for (var set = 0; set < _tables.Length; set++)
        {
            _tables[set] = new SniTable(certificates, contexts, AlpnList(set));
        }
    }

    public IReadOnlyList<LoadedCertificate> Certificates => _certificates;

    /// <summary>The ALPN list a listener speaking <paramref name="protocols"/> offers, as an index for <see cref="Select"/>.</summary>
    public static int AlpnSet(HttpProtocols protocols) =>
        (protocols.HasFlag(HttpProtocols.Http2) ? 1 : 0) | (protocols.HasFlag(HttpProtocols.Http1) ? 2 : 0);

    /// <summary>The TLS options for a handshake on a listener of <paramref name="alpnSet"/> asking for <paramref name="serverName"/>.</summary>
    public SslServerAuthenticationOptions Select(int alpnSet, string? serverName) => _tables[alpnSet].Select(serverName);

    private static List<SslApplicationProtocol> AlpnList(int set)
    {
        var alpn = new List<SslApplicationProtocol>(2);
        if ((set & 1) != 0)
        {
            alpn.Add(SslApplicationProtocol.Http2);
        }
        if ((set & 2) != 0)
        {
            alpn.Add(SslApplicationProtocol.Http11);
        }
        return alpn;
    }

    /// <summary>Host name to TLS options, for one ALPN list.</summary>
    internal sealed class SniTable
    {
        private readonly Dictionary<string, SslServerAuthenticationOptions> _exact = new(StringComparer.OrdinalIgnoreCase);
        private readonly Dictionary<string, SslServerAuthenticationOptions> _wildcard = new(StringComparer.OrdinalIgnoreCase);
        private readonly SslServerAuthenticationOptions _default;

        public SniTable(IReadOnlyList<LoadedCertificate> certificates, SslStreamCertificateContext[] contexts, List<SslApplicationProtocol> alpn)
        {
            SslServerAuthenticationOptions? fallback = null;
            SslServerAuthenticationOptions? first = null;
            for (var i = 0; i < certificates.Count; i++)
            {
                // SslStream copies these options at the start of each handshake, so one instance serves them all.
                var options = new SslServerAuthenticationOptions
                {
                    ServerCertificateContext = contexts[i],
                    EnabledSslProtocols = EnabledProtocols,
                    ApplicationProtocols = alpn,
                    ClientCertificateRequired = false,
                    CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
                    AllowRenegotiation = false,
                };
                first ??= options;
                if (certificates[i].Hosts.Count == 0)
                {
                    fallback ??= options;
                }
                foreach (var host in certificates[i].Hosts)
                {
                    if (host.StartsWith("*.", StringComparison.Ordinal))
                    {
                        _wildcard.TryAdd(host[2..], options);
                    }
                    else
                    {
                        _exact.TryAdd(host, options);
                    }
                }
            }
            // Clients that send no SNI, or a name no certificate lists, get the host-less certificate, else the first.
            _default = fallback ?? first!;
        }

        public SslServerAuthenticationOptions Select(string? serverName)
        {
            if (string.IsNullOrEmpty(serverName))
            {
                return _default;
            }
            if (_exact.TryGetValue(serverName, out var options))
            {
                return options;
            }
            // "*.example.com" covers exactly one label: "a.example.com", not "example.com" nor "a.b.example.com".
            var dot = serverName.IndexOf('.');
            if (dot > 0 && _wildcard.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(serverName.AsSpan(dot + 1), out options))
            {
                return options;
            }
            return _default;
        }
    }
}
