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

    [LoggerMessage(EventId = 203, Level = LogLevel.Information, Message = "TLS certificates reloaded {Trigger}: {Changes}")]
    public static partial void CertificatesReloaded(ILogger logger, string trigger, string changes);

    [LoggerMessage(EventId = 204, Level = LogLevel.Error, Message = "TLS certificates not reloaded {Trigger}, the running ones stay: {Reason}")]
    public static partial void CertificateReloadFailed(ILogger logger, string trigger, string reason);

    [LoggerMessage(EventId = 205, Level = LogLevel.Warning, Message = "Cannot watch {Directory} for certificate renewals ({Reason}); the files are checked every {Interval} instead (00:00:00: never; SIGHUP reloads them)")]
    public static partial void CannotWatchCertificates(ILogger logger, string directory, string reason, TimeSpan interval);

    [LoggerMessage(EventId = 206, Level = LogLevel.Error, Message = "Checking the TLS certificate files failed")]
    public static partial void CertificateWatchFailed(ILogger logger, Exception exception);

    [LoggerMessage(EventId = 207, Level = LogLevel.Information, Message = "TLS: OpenSSL frees each connection's record buffers while it is idle (SSL_MODE_RELEASE_BUFFERS, {Library})")]
    public static partial void IdleTlsBuffersReleased(ILogger logger, string library);

    [LoggerMessage(EventId = 208, Level = LogLevel.Warning, Message = "TLS: cannot ask OpenSSL to free idle connections' record buffers ({Reason}); each idle TLS connection keeps about 34 KB")]
    public static partial void IdleTlsBuffersKept(ILogger logger, string reason);
}
