using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json.Nodes;
using Gateway.Configuration;
using Gateway.Tests.Infrastructure;
using Gateway.Tls;

namespace Gateway.Tests.Tls;

public sealed class CertificateTests : IDisposable
{
    private readonly TestCertificates _certificates = new();

    public void Dispose() => _certificates.Dispose();

    [Fact]
    public async Task The_certificate_is_chosen_by_sni_host_name_over_real_tls()
    {
        var (fallbackPem, fallbackKey, fallback) = _certificates.IssueServer("fallback", "localhost");
        var (chatPem, chatKey, chat) = _certificates.IssueServer("chat", "chat.example.test");
        var (wildPem, wildKey, wild) = _certificates.IssueServer("wild", "*.apps.example.test");
        await using var backend = await Backend.StartAsync("b1");
        var config = GatewayServer.Config(
            GatewayServer.Proxy([("chat", "/chat", "chat")], [("chat", [backend])]),
            [
                new JsonObject { ["Hosts"] = new JsonArray("chat.example.test"), ["Path"] = chatPem, ["KeyPath"] = chatKey },
                new JsonObject { ["Hosts"] = new JsonArray("*.apps.example.test"), ["Path"] = wildPem, ["KeyPath"] = wildKey },
                new JsonObject { ["Path"] = fallbackPem, ["KeyPath"] = fallbackKey },
            ]);
        await using var gateway = await GatewayServer.StartAsync(config);

        Assert.Equal(chat.Thumbprint, (await HandshakeAsync(gateway, "chat.example.test")).Certificate.Thumbprint);
        Assert.Equal(chat.Thumbprint, (await HandshakeAsync(gateway, "CHAT.example.test")).Certificate.Thumbprint);
        Assert.Equal(wild.Thumbprint, (await HandshakeAsync(gateway, "eu.apps.example.test")).Certificate.Thumbprint);
        // The wildcard covers one label only.
        Assert.Equal(fallback.Thumbprint, (await HandshakeAsync(gateway, "a.b.apps.example.test")).Certificate.Thumbprint);
        Assert.Equal(fallback.Thumbprint, (await HandshakeAsync(gateway, "apps.example.test")).Certificate.Thumbprint);
        Assert.Equal(fallback.Thumbprint, (await HandshakeAsync(gateway, "localhost")).Certificate.Thumbprint);
    }

    [Fact]
    public async Task Tls_offers_h2_and_http11_and_refuses_tls_1_1()
    {
        var (pem, key, _) = _certificates.IssueServer("server", "localhost");
        await using var backend = await Backend.StartAsync("b1");
        await using var gateway = await GatewayServer.StartAsync(GatewayServer.Config(
            GatewayServer.Proxy([("chat", "/chat", "chat")], [("chat", [backend])]),
            [new JsonObject { ["Path"] = pem, ["KeyPath"] = key }]));

        var negotiated = await HandshakeAsync(gateway, "localhost");
        Assert.Equal(SslApplicationProtocol.Http2, negotiated.Alpn);
        Assert.True(negotiated.Protocol is SslProtocols.Tls12 or SslProtocols.Tls13);

#pragma warning disable SYSLIB0039 // TLS 1.1 on purpose: the gateway must refuse it.
        await Assert.ThrowsAnyAsync<Exception>(() => HandshakeAsync(gateway, "localhost", SslProtocols.Tls11));
#pragma warning restore SYSLIB0039
    }

    [Fact]
    public void A_pfx_is_loaded_with_the_password_from_the_environment()
    {
        var (pem, key, _) = _certificates.IssueServer("pfx", "localhost");
        using var withKey = X509Certificate2.CreateFromPemFile(pem, key);
        var pfxPath = Path.Combine(_certificates.Directory, "server.pfx");
        File.WriteAllBytes(pfxPath, withKey.Export(X509ContentType.Pfx, "s3cret"));
        var options = new CertificateOptions { Path = pfxPath, PasswordEnvironmentVariable = "PFX_PASSWORD" };

        var loaded = CertificateLoader.Load(options, 0, name => name == "PFX_PASSWORD" ? "s3cret" : null);
        Assert.True(loaded.Certificate.HasPrivateKey);
        Assert.Equal(withKey.Thumbprint, loaded.Certificate.Thumbprint);

        var wrong = Assert.Throws<GatewayConfigurationException>(() => CertificateLoader.Load(options, 3, _ => "wrong"));
        Assert.Equal("Gateway:Tls:Certificates:3:Path", wrong.Key);
        var unset = Assert.Throws<GatewayConfigurationException>(() => CertificateLoader.Load(options, 0, _ => null));
        Assert.Equal("Gateway:Tls:Certificates:0:PasswordEnvironmentVariable", unset.Key);
    }

    [Fact]
    public void Without_certificates_a_self_signed_localhost_certificate_is_made()
    {
        using var certificate = SelfSignedCertificate.CreateForLocalhost(TimeProvider.System);
        Assert.True(certificate.HasPrivateKey);
        Assert.Contains("localhost", certificate.GetNameInfo(X509NameType.DnsName, false));
        Assert.True(certificate.NotAfter > DateTime.Now.AddDays(20));
    }

    private async Task<(X509Certificate2 Certificate, SslApplicationProtocol Alpn, SslProtocols Protocol)> HandshakeAsync(
        GatewayServer gateway, string serverName, SslProtocols protocols = SslProtocols.None)
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync("127.0.0.1", gateway.Wss.Port);
        await using var tls = new SslStream(tcp.GetStream());
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = serverName,
            EnabledSslProtocols = protocols,
            ApplicationProtocols = [SslApplicationProtocol.Http2, SslApplicationProtocol.Http11],
            // Every certificate here is ours; which one came back is what the test checks.
            RemoteCertificateValidationCallback = (_, _, _, _) => true,
        }, timeout.Token);
        return (X509CertificateLoader.LoadCertificate(tls.RemoteCertificate!.GetRawCertData()), tls.NegotiatedApplicationProtocol, tls.SslProtocol);
    }
}
