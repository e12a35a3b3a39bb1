namespace Gateway.Tls;

internal static partial class Log
{
    [LoggerMessage(EventId = 200, Level = LogLevel.Warning, Message =
        "!!! NO TLS CERTIFICATE CONFIGURED: serving a self-signed certificate for localhost, valid until {NotAfter:u}. " +
        "Browsers will warn and other hosts will not trust it. Configure Gateway:Tls:Certificates (see certs/README.md) before production. !!!")]
    public static partial void SelfSignedCertificateInUse(ILogger logger, DateTime notAfter);

    [LoggerMessage(EventId = 201, Level = LogLevel.Warning, Message = "TLS certificate {Subject} ({Key}) expires {NotAfter:u}")]
    public static partial void CertificateExpiresSoon(ILogger logger, string subject, string key, DateTime notAfter);

    [LoggerMessage(EventId = 202, Level = LogLevel.Information, Message = "TLS certificate {Subject} serves {Hosts}, valid until {NotAfter:u}")]
    public static partial void CertificateLoaded(ILogger logger, string subject, string hosts, DateTime notAfter);
}
