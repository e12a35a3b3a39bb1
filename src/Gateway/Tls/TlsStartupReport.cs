namespace Gateway.Tls;

/// <summary>What TLS will serve, logged once the logger exists (certificates are loaded before it does).</summary>
public sealed class TlsStartupReport
{
    private static readonly TimeSpan ExpiryWarning = TimeSpan.FromDays(14);
    private readonly ServerCertificateSelector? _certificates;
    private readonly bool _selfSigned;

    public TlsStartupReport(ServerCertificateSelector? certificates, bool selfSigned)
    {
        _certificates = certificates;
        _selfSigned = selfSigned;
    }

    public void Log(ILoggerFactory loggers)
    {
        if (_certificates is null)
        {
            return;
        }
        var logger = loggers.CreateLogger("Gateway.Tls");
        var certificates = _certificates.Certificates;
        if (_selfSigned)
        {
            Tls.Log.SelfSignedCertificateInUse(logger, certificates[0].Certificate.NotAfter.ToUniversalTime());
            return;
        }
        for (var i = 0; i < certificates.Count; i++)
        {
            var certificate = certificates[i].Certificate;
            var notAfter = certificate.NotAfter.ToUniversalTime();
            var hosts = certificates[i].Hosts.Count == 0 ? "(default)" : string.Join(", ", certificates[i].Hosts);
            Tls.Log.CertificateLoaded(logger, certificate.Subject, hosts, notAfter);
            if (notAfter - DateTime.UtcNow < ExpiryWarning)
            {
                Tls.Log.CertificateExpiresSoon(logger, certificate.Subject, $"Gateway:Tls:Certificates:{i}", notAfter);
            }
        }
    }
}
