using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Tls;

/// <summary>A fresh TLS handshake with the gateway's wss listener, returning the certificate it presented.</summary>
internal static class TlsProbe
{
    public static async Task<X509Certificate2> CertificateAsync(GatewayServer gateway, string serverName = "localhost")
    {
        using var tcp = new TcpClient();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await tcp.ConnectAsync("127.0.0.1", gateway.Wss.Port, timeout.Token);
        await using var tls = new SslStream(tcp.GetStream());
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = serverName,
            // Every certificate here is ours; which one came back is what the tests check.
            RemoteCertificateValidationCallback = (_, _, _, _) => true,
        }, timeout.Token);
        return X509CertificateLoader.LoadCertificate(tls.RemoteCertificate!.GetRawCertData());
    }

    public static async Task<string> ThumbprintAsync(GatewayServer gateway, string serverName = "localhost") =>
        (await CertificateAsync(gateway, serverName)).Thumbprint;
}
