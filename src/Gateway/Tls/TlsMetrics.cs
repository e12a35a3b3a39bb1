using System.Diagnostics.Metrics;
using Gateway.Metrics;

namespace Gateway.Tls;

/// <summary>Certificate reloads, and when each served certificate expires (so an alert can fire before it does).</summary>
internal sealed class TlsMetrics
{
    private readonly Counter<long> _reloads;

    public TlsMetrics(GatewayMeter meter, CertificateStore store)
    {
        _reloads = meter.Meter.CreateCounter<long>("gateway.tls.certificate_reloads", "{reload}",
            "Reloads of the TLS certificate files, by result: success (the files loaded; changed certificates are served) or failure (the running certificates stayed)");
        meter.Meter.CreateObservableGauge("gateway.tls.certificate_expiry_timestamp", () => ReadExpiry(store), "s",
            "When each served certificate expires (its NotAfter), in seconds since the Unix epoch, by its index in Gateway:Tls:Certificates and its first host");
    }

    internal void Reloaded(bool success) =>
        _reloads.Add(1, new KeyValuePair<string, object?>("result", success ? "success" : "failure"));

    private static IEnumerable<Measurement<long>> ReadExpiry(CertificateStore store)
    {
        // Labels come from the configuration, not the certificate: a renewal keeps the series, and the set is bounded.
        var certificates = store.Current.Certificates;
        for (var i = 0; i < certificates.Count; i++)
        {
            var notAfter = new DateTimeOffset(certificates[i].Certificate.NotAfter.ToUniversalTime());
            yield return new Measurement<long>(notAfter.ToUnixTimeSeconds(),
                new KeyValuePair<string, object?>("certificate", store.SelfSigned ? "self-signed" : i.ToString(System.Globalization.CultureInfo.InvariantCulture)),
                new KeyValuePair<string, object?>("host", HostLabel(certificates[i])));
        }
    }

    internal static string HostLabel(LoadedCertificate certificate) => certificate.Hosts.Count == 0 ? "default" : certificate.Hosts[0];
}
