using Gateway.Configuration;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Gateway.Tls;

internal static class TlsExtensions
{
    private const string LogCategory = "Gateway.Tls";

    /// <summary>
    /// Loads the configured certificates (or makes a self-signed one when none is configured) when a listener speaks
    /// TLS, and registers what serves and renews them: the store the listeners read on every handshake, the watcher
    /// that reloads renewed files, and their metrics. Returns the store, or null when no listener uses TLS.
    /// A certificate that cannot be loaded at startup throws, naming its key and file.
    /// </summary>
    public static CertificateStore? AddTls(this IServiceCollection services, GatewayOptions options, Func<string, string?> getEnvironment)
    {
        if (!options.Listeners.Values.Any(l => l.Tls))
        {
            return null;
        }
        var tls = options.Tls;
        var files = new WatchedFiles(tls.Certificates.SelectMany(c => c.KeyPath is null ? [c.Path!] : new[] { c.Path!, c.KeyPath }));
        // Before reading: a renewal that lands while the files are read is then seen as a change.
        var loadedFrom = files.Snapshot();
        var loaded = CertificateLoader.LoadAll(tls.Certificates, getEnvironment);
        var selfSigned = loaded.Count == 0;
        if (selfSigned)
        {
            loaded.Add(new LoadedCertificate(SelfSignedCertificate.CreateForLocalhost(TimeProvider.System), new(), []));
        }
        var store = new CertificateStore(new ServerCertificateSelector(loaded), selfSigned);

        services.AddSingleton(store);
        services.TryAddSingleton(TimeProvider.System);
        services.AddSingleton<TlsMetrics>();
        if (!selfSigned)
        {
            services.AddSingleton(provider => new CertificateReloader(store, files, loadedFrom, tls.Certificates, getEnvironment,
                provider.GetRequiredService<TlsMetrics>(), provider.GetRequiredService<TimeProvider>(), Logger(provider)));
            services.AddSingleton(provider => new CertificateWatcher(provider.GetRequiredService<CertificateReloader>(), files,
                tls.CertificateCheckInterval, provider.GetRequiredService<ReloadSignal>(), provider.GetRequiredService<TimeProvider>(), Logger(provider)));
            services.AddHostedService(provider => provider.GetRequiredService<CertificateWatcher>());
        }
        return store;
    }

    /// <summary>Logs what TLS serves (and what expires soon) and creates its metrics, once the logger exists.</summary>
    public static WebApplication UseTls(this WebApplication app)
    {
        if (app.Services.GetService<CertificateStore>() is { } store)
        {
            app.Services.GetRequiredService<TlsMetrics>();
            CertificateReport.LogStartup(Logger(app.Services), store, app.Services.GetRequiredService<TimeProvider>());
        }
        return app;
    }

    private static ILogger Logger(IServiceProvider services) => services.GetRequiredService<ILoggerFactory>().CreateLogger(LogCategory);
}
