using System.Net.Security;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;

namespace Gateway.Tls;

/// <summary>
/// The certificates TLS serves now. A reload swaps in a complete new <see cref="ServerCertificateSelector"/> with one
/// reference write: each handshake reads it once, so it sees either the old set or the new one, never a mix, and
/// connections that finished their handshake keep the certificate they were given.
/// </summary>
internal sealed class CertificateStore
{
    private volatile ServerCertificateSelector _current;

    public CertificateStore(ServerCertificateSelector initial, bool selfSigned)
    {
        _current = initial;
        SelfSigned = selfSigned;
    }

    public ServerCertificateSelector Current => _current;

    /// <summary>No certificate is configured: a generated one for localhost is served, and there is nothing to watch.</summary>
    public bool SelfSigned { get; }

    /// <summary>Makes <paramref name="next"/> the selector for every handshake from now on; returns the one it replaced.</summary>
    public ServerCertificateSelector Swap(ServerCertificateSelector next) => Interlocked.Exchange(ref _current, next);

    /// <summary>The handshake callback for a listener speaking <paramref name="protocols"/> (they decide the ALPN list).</summary>
    public Func<TlsHandshakeCallbackContext, ValueTask<SslServerAuthenticationOptions>> ForProtocols(HttpProtocols protocols)
    {
        var alpnSet = ServerCertificateSelector.AlpnSet(protocols);
        return context => ValueTask.FromResult(_current.Select(alpnSet, context.ClientHelloInfo.ServerName));
    }
}
