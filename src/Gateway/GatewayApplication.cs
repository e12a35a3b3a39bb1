using Gateway.Admin;
using Gateway.Configuration;
using Gateway.Handshake;
using Gateway.KeepAlive;
using Gateway.Listeners;
using Gateway.Metrics;
using Gateway.Policies;
using Gateway.Proxy;
using Gateway.Relay;
using Gateway.Tls;
using Gateway.Warmup;
using Microsoft.AspNetCore.DataProtection;
using Yarp.ReverseProxy.Transforms;

namespace Gateway;

/// <summary>Builds the gateway from its configuration file: listeners, TLS, YARP, admin endpoints.</summary>
public static class GatewayApplication
{
    public const string ReverseProxySection = "ReverseProxy";

    private const string HostingDiagnosticsCategory = "Microsoft.AspNetCore.Hosting.Diagnostics";
    private const string InlineSocketCompletionsVariable = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";

    /// <summary>
    /// Builds (does not start) the gateway. Every configuration mistake surfaces here as a
    /// <see cref="GatewayStartupException"/> whose message names the file and the key.
    /// </summary>
    public static WebApplication Build(string[] args, Func<string, string?>? getEnvironment = null)
    {
        getEnvironment ??= Environment.GetEnvironmentVariable;
        var configFile = ConfigFileLocator.Locate(args, getEnvironment);
        var shownFile = ShownPath(configFile);
        var remainingArgs = ConfigFileLocator.RemoveConfigArguments(args);

        var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = remainingArgs });
        // Startup failures are reported as one line by Program; the host's own copy is a stack trace.
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", LogLevel.Critical);
        builder.Logging.AddSimpleConsole(console =>
        {
            console.SingleLine = true;
            console.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fff ";
            console.UseUtcTimestamp = true;
        });
        // A flood of log lines must never stall traffic: with inline completions the logging thread may be an I/O
        // thread, and the console logger's default when its queue is full is to wait.
        builder.Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(console =>
            console.QueueFullMode = Microsoft.Extensions.Logging.Console.ConsoleLoggerQueueFullMode.DropWrite);

        // The file first, then environment variables and the command line, which override it as usual.
        var source = new ReloadableJsonConfigurationSource(configFile);
        try
        {
            ((IConfigurationBuilder)builder.Configuration).Add(source);
        }
        catch (Exception ex) when (ex is InvalidDataException or IOException or UnauthorizedAccessException)
        {
            throw new GatewayStartupException($"{shownFile}: {ex.Message}", GatewayStartupException.ConfigurationExitCode, ex);
        }
        builder.Configuration.AddEnvironmentVariables();
        builder.Configuration.AddCommandLine(remainingArgs);

        // ASP.NET Core starts an Activity and a logging scope for every request while any level of this logger is on,
        // and an upgraded WebSocket keeps both for its whole life (bench/RESULTS.md: about 0.5 KB per idle tunnel,
        // and CPU per handshake). Its only messages are the Information-level "Request starting/finished" lines,
        // which the gateway's metrics replace; configuring the category explicitly turns them back on.
        if (builder.Configuration.GetSection($"Logging:LogLevel:{HostingDiagnosticsCategory}").Value is null)
        {
            builder.Logging.AddFilter(HostingDiagnosticsCategory, LogLevel.None);
        }

        GatewayOptions options;
        ServerCertificateSelector? certificates;
        try
        {
            options = GatewayOptionsLoader.Load(builder.Configuration, Path.GetDirectoryName(configFile)!);
            certificates = LoadCertificates(options, getEnvironment, out var selfSigned);
            builder.Services.AddSingleton(new TlsStartupReport(certificates, selfSigned));
        }
        catch (GatewayConfigurationException ex)
        {
            throw new GatewayStartupException($"{shownFile}: {ex.Message}", GatewayStartupException.ConfigurationExitCode, ex);
        }

        builder.Services.AddSingleton(options);
        builder.Services.AddSingleton(new ConfigFile(configFile, shownFile));
        builder.Services.AddSingleton(source);
        builder.Services.AddSingleton<ConfigReloadReporter>();
        builder.Services.AddHostedService(services => services.GetRequiredService<ConfigReloadReporter>());
        builder.Services.AddSingleton<Yarp.ReverseProxy.Configuration.IConfigChangeListener>(services => services.GetRequiredService<ConfigReloadReporter>());
        builder.Services.AddSingleton<Readiness>();
        builder.Services.AddSingleton<WebSocketPolicies>();
        builder.Services.AddSingleton<GatewayMeter>();
        builder.Services.AddHandshakeGate(builder.Configuration);
        builder.Services.AddSingleton<RelayMetrics>();
        builder.Services.AddSingleton<ProxyMetrics>();
        builder.Services.AddConnectRetry();
        builder.Services.AddSingleton<MetricsSetup>();
        builder.Services.AddSingleton<KeepAliveSweeper>();
        builder.Services.AddSingleton(services => Listeners.FileDescriptorLimit.FromProcess(
            services.GetRequiredService<ILoggerFactory>().CreateLogger("Gateway.Listeners")));
        builder.Services.AddHostedService(services => services.GetRequiredService<KeepAliveSweeper>());
        var bound = new BoundListeners();
        builder.Services.AddSingleton(bound);
        builder.WebHost.ConfigureKestrel(kestrel => KestrelListeners.Configure(kestrel, options, certificates, bound));
        builder.WebHost.UseShutdownTimeout(options.ShutdownTimeout);
        builder.WebHost.UseSockets(sockets =>
        {
            sockets.Backlog = options.ListenBacklog;
            sockets.UnsafePreferInlineScheduling = options.InlineCompletions;
        });
        if (options.InlineCompletions && getEnvironment(InlineSocketCompletionsVariable) is null)
        {
            // Read once by System.Net.Sockets when the first socket starts an asynchronous operation, which has not
            // happened yet in the gateway's own process; an explicit setting in the environment wins.
            Environment.SetEnvironmentVariable(InlineSocketCompletionsVariable, "1");
        }

        var dataProtection = builder.Services.AddDataProtection().SetApplicationName(options.DataProtection.ApplicationName);
        if (options.DataProtection.KeyDirectory is { } keyDirectory)
        {
            EnsureWritableDirectory(keyDirectory, shownFile);
            dataProtection.PersistKeysToFileSystem(new DirectoryInfo(keyDirectory));
        }

        // Before AddReverseProxy, whose TryAdd then keeps this factory: the backend leg of a WebSocket on a socket of its own.
        builder.Services.AddSingleton<Yarp.ReverseProxy.Forwarder.IForwarderHttpClientFactory, GatewayHttpClientFactory>();
        builder.Services.AddReverseProxy()
            .LoadFromConfig(builder.Configuration.GetSection(ReverseProxySection))
            .AddConfigFilter<ProxyConfigDefaults>()
            .AddTransforms(transforms => transforms.AddResponseTransform(RelayMiddleware.AttachBackendAsync));
        if (options.Warmup.Enabled)
        {
            builder.Services.AddSingleton<WarmupRoute>();
            builder.Services.AddSingleton<Yarp.ReverseProxy.Configuration.IProxyConfigProvider>(services => services.GetRequiredService<WarmupRoute>().Provider);
            builder.Services.AddSingleton<WarmupService>();
            builder.Services.AddHostedService(services => services.GetRequiredService<WarmupService>());
        }

        var app = builder.Build();
        app.Services.GetRequiredService<Readiness>();
        // Metrics listen from the start, with the instruments of every feature created up front.
        app.Services.GetRequiredService<MetricsSetup>();
        app.Services.GetRequiredService<RelayMetrics>();
        app.Services.GetRequiredService<ProxyMetrics>();
        app.Services.GetRequiredService<TlsStartupReport>().Log(app.Services.GetRequiredService<ILoggerFactory>());
        if (!builder.Configuration.GetSection($"{ReverseProxySection}:Routes").Exists())
        {
            Configuration.Log.NoRoutes(app.Logger, shownFile);
        }

        // Counted now: what the process holds before the first connection is part of the budget.
        app.Services.GetRequiredService<Listeners.FileDescriptorLimit>().LogStartup();
        app.UseAdminListener();
        app.UseTrustedForwarders();
        try
        {
            // YARP loads and validates routes and clusters here, running ProxyConfigDefaults on each.
            // The proxy pipeline: the gateway's own steps first (before any backend is chosen), then YARP's.
            app.MapReverseProxy(proxy =>
            {
                proxy.UseMiddleware<ProxyErrorsMiddleware>();
                proxy.UseHandshakeGate();
                proxy.UseWebSocketRelay();
                proxy.UseConnectRetry();
                proxy.UseSessionAffinity();
                proxy.UseLoadBalancing();
                proxy.UsePassiveHealthChecks();
            });
        }
        catch (InvalidOperationException ex)
        {
            throw new GatewayStartupException($"{shownFile}: {ProxyConfigErrors.Describe(ex)}", GatewayStartupException.ConfigurationExitCode, ex);
        }
        return app;
    }

    /// <summary>Starts the gateway; a listener that cannot be bound becomes a <see cref="GatewayStartupException"/>.</summary>
    public static async Task StartAsync(WebApplication app, CancellationToken cancellationToken = default)
    {
        try
        {
            await app.StartAsync(cancellationToken);
        }
        catch (Exception ex) when (KestrelListeners.IsBindFailure(ex))
        {
            var file = app.Services.GetRequiredService<ConfigFile>();
            throw KestrelListeners.DescribeBindFailure(ex, app.Services.GetRequiredService<GatewayOptions>(), file.ShownPath);
        }
    }

    private static ServerCertificateSelector? LoadCertificates(GatewayOptions options, Func<string, string?> getEnvironment, out bool selfSigned)
    {
        selfSigned = false;
        if (!options.Listeners.Values.Any(l => l.Tls))
        {
            return null;
        }
        var loaded = new List<LoadedCertificate>();
        for (var i = 0; i < options.Tls.Certificates.Count; i++)
        {
            loaded.Add(CertificateLoader.Load(options.Tls.Certificates[i], i, getEnvironment));
        }
        if (loaded.Count == 0)
        {
            selfSigned = true;
            loaded.Add(new LoadedCertificate(SelfSignedCertificate.CreateForLocalhost(TimeProvider.System), new(), []));
        }
        return new ServerCertificateSelector(loaded);
    }

    private static void EnsureWritableDirectory(string directory, string shownFile)
    {
        try
        {
            Directory.CreateDirectory(directory);
            var probe = Path.Combine(directory, $".write-test-{Environment.ProcessId}");
            File.WriteAllText(probe, string.Empty);
            File.Delete(probe);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new GatewayStartupException(
                $"{shownFile}: {GatewayOptions.SectionName}:DataProtection:KeyDirectory: cannot write to '{directory}': {ex.Message}",
                GatewayStartupException.ConfigurationExitCode, ex);
        }
    }

    private static string ShownPath(string fullPath)
    {
        var relative = Path.GetRelativePath(Environment.CurrentDirectory, fullPath);
        return relative.StartsWith("..", StringComparison.Ordinal) ? fullPath : relative;
    }
}

/// <summary>The configuration file in use, as a full path and as shown in messages.</summary>
public sealed record ConfigFile(string FullPath, string ShownPath);
