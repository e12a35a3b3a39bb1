namespace Gateway.Tls;

/// <summary>What TLS serves, in the log: at startup (once the logger exists) and after each reload.</summary>
internal static class CertificateReport
{
    /// <summary>Certificates expiring sooner than this are logged as a warning, at startup and at every reload.</summary>
    public static readonly TimeSpan ExpiryWarning = TimeSpan.FromDays(14);

    public static void LogStartup(ILogger logger, CertificateStore store, TimeProvider time)
    {
        var certificates = store.Current.Certificates;
        if (store.SelfSigned)
        {
            Log.SelfSignedCertificateInUse(logger, certificates[0].Certificate.NotAfter.ToUniversalTime());
            return;
        }
        for (var i = 0; i < certificates.Count; i++)
        {
            var certificate = certificates[i].Certificate;
            var hosts = certificates[i].Hosts.Count == 0 ? "(default)" : string.Join(", ", certificates[i].Hosts);
            Log.CertificateLoaded(logger, certificate.Subject, hosts, certificate.NotAfter.ToUniversalTime());
        }
        WarnExpiring(logger, certificates, time);
    }

    public static void WarnExpiring(ILogger logger, IReadOnlyList<LoadedCertificate> certificates, TimeProvider time)
    {
        var now = time.GetUtcNow().UtcDateTime;
        for (var i = 0; i < certificates.Count; i++)
        {
            var certificate = certificates[i].Certificate;
            var notAfter = certificate.NotAfter.ToUniversalTime();
            if (notAfter - now < ExpiryWarning)
            {
                Log.CertificateExpiresSoon(logger, certificate.Subject, Key(i), notAfter);
            }
        }
    }

    public static string Key(int index) => $"{Configuration.GatewayOptions.SectionName}:Tls:Certificates:{index}";
}
