using System.Text;
using Gateway.Configuration;

namespace Gateway.Tls;

/// <summary>
/// Loads every configured certificate again, exactly as at startup, and swaps the result in whole. Any failure (a file
/// missing, half-written or unparsable, a key that does not match) keeps the running certificates and is logged once,
/// naming the file and the cause; the files' state is remembered, so the next change of any of them is tried again.
/// </summary>
internal sealed class CertificateReloader
{
    private readonly Lock _gate = new();
    private readonly CertificateStore _store;
    private readonly WatchedFiles _files;
    private readonly IReadOnlyList<CertificateOptions> _certificates;
    private readonly Func<string, string?> _getEnvironment;
    private readonly TlsMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    /// <summary>The files as they were when they were last loaded (or tried).</summary>
    private FileState[] _tried;

    public CertificateReloader(CertificateStore store, WatchedFiles files, FileState[] loadedFrom, IReadOnlyList<CertificateOptions> certificates,
        Func<string, string?> getEnvironment, TlsMetrics metrics, TimeProvider time, ILogger logger)
    {
        _store = store;
        _files = files;
        _tried = loadedFrom;
        _certificates = certificates;
        _getEnvironment = getEnvironment;
        _metrics = metrics;
        _time = time;
        _logger = logger;
    }

    /// <summary>Whether any file differs from the last load or attempt.</summary>
    public bool FilesChanged()
    {
        var now = _files.Snapshot();
        lock (_gate)
        {
            return !WatchedFiles.Same(now, _tried);
        }
    }

    /// <summary>Reloads if any file differs from the last load or attempt; returns whether it tried.</summary>
    public bool ReloadIfChanged(string trigger)
    {
        lock (_gate)
        {
            var now = _files.Snapshot();
            if (WatchedFiles.Same(now, _tried))
            {
                return false;
            }
            Reload(now, trigger);
            return true;
        }
    }

    /// <summary>Reloads whatever the files say (SIGHUP); returns whether the new files could be used.</summary>
    public bool Reload(string trigger)
    {
        lock (_gate)
        {
            return Reload(_files.Snapshot(), trigger);
        }
    }

    private bool Reload(FileState[] state, string trigger)
    {
        // Taken before reading: a file that changes while it is read differs from this, so it is read again.
        _tried = state;
        ServerCertificateSelector next;
        try
        {
            next = new ServerCertificateSelector(CertificateLoader.LoadAll(_certificates, _getEnvironment));
        }
        catch (Exception ex)
        {
            // Whatever went wrong, the running certificates stay: a reload must never take TLS down.
            var reason = ex is GatewayConfigurationException ? ex.Message : $"{GatewayOptions.SectionName}:Tls:Certificates: {ex.Message}";
            Log.CertificateReloadFailed(_logger, trigger, reason);
            _metrics.Reloaded(success: false);
            return false;
        }

        var changes = Describe(_store.Current, next);
        if (changes is not null)
        {
            _store.Swap(next);
        }
        Log.CertificatesReloaded(_logger, trigger, changes ?? "no certificate changed");
        CertificateReport.WarnExpiring(_logger, next.Certificates, _time);
        _metrics.Reloaded(success: true);
        return true;
    }

    /// <summary>One phrase per certificate whose leaf or chain changed, or null when none did.</summary>
    private static string? Describe(ServerCertificateSelector current, ServerCertificateSelector next)
    {
        StringBuilder? text = null;
        for (var i = 0; i < next.Certificates.Count; i++)
        {
            var now = next.Certificates[i];
            var before = i < current.Certificates.Count ? current.Certificates[i] : null;
            if (before is not null && SameChain(before, now))
            {
                continue;
            }
            text = text is null ? new StringBuilder() : text.Append("; ");
            text.Append(CertificateReport.Key(i)).Append(" (").Append(TlsMetrics.HostLabel(now)).Append(") now ")
                .Append(now.Certificate.Subject).Append(' ').Append(Short(now.Certificate.Thumbprint));
            if (before is not null)
            {
                text.Append(" (was ").Append(Short(before.Certificate.Thumbprint)).Append(')');
            }
            text.Append(", valid until ").Append(now.Certificate.NotAfter.ToUniversalTime().ToString("u", System.Globalization.CultureInfo.InvariantCulture));
        }
        return text?.ToString();
    }

    private static bool SameChain(LoadedCertificate a, LoadedCertificate b)
    {
        if (a.Certificate.Thumbprint != b.Certificate.Thumbprint || a.Intermediates.Count != b.Intermediates.Count)
        {
            return false;
        }
        for (var i = 0; i < a.Intermediates.Count; i++)
        {
            if (a.Intermediates[i].Thumbprint != b.Intermediates[i].Thumbprint)
            {
                return false;
            }
        }
        return true;
    }

    private static string Short(string thumbprint) => $"SHA-1 {thumbprint[..Math.Min(12, thumbprint.Length)]}";
}
