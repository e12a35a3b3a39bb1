using System.Net;
using System.Net.Security;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace Gateway.Tests.Infrastructure;

/// <summary>A private CA and server certificates it signed, written as PEM files, like an operator's.</summary>
public sealed class TestCertificates : IDisposable
{
    private readonly ECDsa _caKey;

    public TestCertificates()
    {
        Directory = System.IO.Directory.CreateTempSubdirectory("gateway-certs-").FullName;
        _caKey = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest("CN=Gateway Test CA", _caKey, HashAlgorithmName.SHA256);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        Authority = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
    }

    public string Directory { get; }

    public X509Certificate2 Authority { get; }

    /// <summary>Issues a server certificate for <paramref name="hosts"/> (and loopback addresses); returns the PEM paths.</summary>
    public (string CertificatePath, string KeyPath, X509Certificate2 Certificate) IssueServer(string name, params string[] hosts) =>
        IssueServer(name, DateTimeOffset.UtcNow.AddDays(7), hosts);

    /// <summary>The same, valid until <paramref name="notAfter"/> (at most the CA's 30 days).</summary>
    public (string CertificatePath, string KeyPath, X509Certificate2 Certificate) IssueServer(string name, DateTimeOffset notAfter, params string[] hosts)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={hosts.FirstOrDefault() ?? name}", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        foreach (var host in hosts)
        {
            san.AddDnsName(host);
        }
        san.AddIpAddress(IPAddress.Loopback);
        san.AddIpAddress(IPAddress.IPv6Loopback);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        var serial = RandomNumberGenerator.GetBytes(12);
        using var issued = request.Create(Authority, DateTimeOffset.UtcNow.AddHours(-1), notAfter, serial);
        var certificate = issued.CopyWithPrivateKey(key);

        var certificatePath = Path.Combine(Directory, $"{name}.pem");
        var keyPath = Path.Combine(Directory, $"{name}.key");
        File.WriteAllText(certificatePath, certificate.ExportCertificatePem() + "\n" + Authority.ExportCertificatePem() + "\n");
        File.WriteAllText(keyPath, key.ExportPkcs8PrivateKeyPem());
        return (certificatePath, keyPath, X509CertificateLoader.LoadCertificate(certificate.RawData));
    }

    /// <summary>Validates a server's chain against this CA only (not the machine's trust store).</summary>
    public bool Validate(object? sender, X509Certificate? certificate, X509Chain? chain, SslPolicyErrors errors)
    {
        if (certificate is null)
        {
            return false;
        }
        using var custom = new X509Chain();
        custom.ChainPolicy.TrustMode = X509ChainTrustMode.CustomRootTrust;
        custom.ChainPolicy.CustomTrustStore.Add(Authority);
        custom.ChainPolicy.RevocationMode = X509RevocationMode.NoCheck;
        using var leaf = X509CertificateLoader.LoadCertificate(certificate.GetRawCertData());
        // Name mismatch is still an error: only the "untrusted root" part is ours to override.
        return custom.Build(leaf) && (errors & SslPolicyErrors.RemoteCertificateNameMismatch) == 0;
    }

    public void Dispose()
    {
        _caKey.Dispose();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
