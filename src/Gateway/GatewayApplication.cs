using Gateway.Admin;
using Gateway.Configuration;
using Gateway.Handshake;
using Gateway.Lifecycle;
using Gateway.Listeners;
using Gateway.Metrics;
using Gateway.Policies;
using Gateway.Proxy;
using Gateway.Reload;
using Gateway.Relay;
using Gateway.Telemetry;
using Gateway.Tls;
using Gateway.Warmup;

namespace Gateway;

/// <summary>Builds the gateway from its configuration file: listeners, TLS, YARP, admin endpoints.</summary>
public static class GatewayApplication
{
    public const string ReverseProxySection = GatewayOptions.ReverseProxySectionName;

    private const string HostingDiagnosticsCategory = "Microsoft.AspNetCore.Hosting.Diagnostics";

    /// <summary>
    /// Builds (does not start) the gateway. Every configuration mistake surfaces here as a
    /// <see cref="GatewayStartupException"/> whose message names the file and the key.
    /// </summary>
    /// <param name="configureServices">Runs after the gateway's own registrations: tests replace the clock or add a logger here.</param>
    public static WebApplication Build(string[] args, Func<string, string?>? getEnvironment = null, Action<IServiceCollection>? configureServices = null)
    {
        getEnvironment ??= Environment.GetEnvironmentVariable;
        var configFile = ConfigFileLocator.Locate(args, getEnvironment);
        var shownFile = ShownPath(configFile);
        var remainingArgs = ConfigFileLocator.RemoveConfigArguments(args);
        Listeners.InlineSocketCompletions.Prepare(configFile, remainingArgs, getEnvironment);

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
        // The single-line simple format unless the file names another (`Logging:Console:FormatterName`: `json` for
        // structured logs, the access log's fields included); AddSimpleConsole alone would override the file.
        if (builder.Configuration["Logging:Console:FormatterName"] is { Length: > 0 } formatter)
        {
            builder.Services.Configure<Microsoft.Extensions.Logging.Console.ConsoleLoggerOptions>(console => console.FormatterName = formatter);
        }

        // ASP.NET Core starts an Activity and a logging scope for every request while any level of this logger is on,
        // and an upgraded WebSocket keeps both for its whole life (bench/RESULTS.md: about 0.5 KB per idle tunnel,
        // and CPU per handshake). Its only messages are the Information-level "Request starting/finished" lines,
        // which the gateway's metrics replace; configuring the category explicitly turns them back on.
        if (builder.Configuration.GetSection($"Logging:LogLevel:{HostingDiagnosticsCategory}").Value is null)
        {
            builder.Logging.AddFilter(HostingDiagnosticsCategory, LogLevel.None);
        }

        GatewayOptions options;
        CertificateStore? certificates;
        try
        {
            options = GatewayConfiguration.Load(builder.Configuration, Path.GetDirectoryName(configFile)!);
            // YARP ignores keys it does not know; a misspelt one must not run with its default.
            ReverseProxyKeys.Check(builder.Configuration.GetSection(ReverseProxySection));
            certificates = builder.Services.AddTls(options, getEnvironment);
        }
        catch (GatewayConfigurationException ex)
        {
            throw new GatewayStartupException($"{shownFile}: {ex.Message}", GatewayStartupException.ConfigurationExitCode, ex);
        }

        // The capabilities, each registering what it needs.
        builder.Services.AddGatewayConfiguration(options, new ConfigFile(configFile, shownFile), source);
        builder.Services.AddConfigReload();
        builder.Services.AddAdmin(AdminTokenFrom(options, getEnvironment, shownFile));
        builder.Services.AddGatewayMetrics();
        builder.Services.AddGatewayTelemetry(options.Telemetry);
        builder.Services.AddWebSocketPolicies();
        builder.Services.AddHandshakeGate(builder.Configuration);
        builder.Services.AddWebSocketRelay();
        builder.UseGatewayListeners(options, certificates);
        builder.AddGatewayProxy(options, shownFile);
        builder.Services.AddWarmup(options.Warmup);
        builder.Services.AddLifecycle();

        // The lean HTTP/1.1 path (Listeners/LeanHttp1) runs the very request delegate Kestrel's requests run: captured by
        // the first startup filter, so every other filter's middleware and WebApplication's implicit routing are in it.
        builder.Services.AddSingleton<Listeners.LeanHttp1.LeanHttp1Pipeline>();
        builder.Services.Insert(0, ServiceDescriptor.Transient<IStartupFilter, Listeners.LeanHttp1.LeanHttp1StartupFilter>());
        configureServices?.Invoke(builder.Services);
        var app = builder.Build();
        app.Services.GetRequiredService<Readiness>();
        // Metrics listen from the start, with the instruments of every feature created up front.
        app.Services.GetRequiredService<OpenTelemetry.Metrics.MeterProvider>();
        app.Services.GetRequiredService<RelayMetrics>();
        app.Services.GetRequiredService<ProxyMetrics>();
        app.UseGatewayTelemetry();
        app.UseTls();
        if (!builder.Configuration.GetSection($"{ReverseProxySection}:Routes").Exists())
        {
            Configuration.Log.NoRoutes(app.Logger, shownFile);
        }

        // Counted now: what the process holds before the first connection is part of the budget.
        app.Services.GetRequiredService<Listeners.FileDescriptorLimit>().LogStartup();
        Listeners.RapidResetWarning.Check(builder.Configuration, options, app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Gateway.Listeners"));
        app.UseTrustedForwarders();
        try
        {
            // YARP loads and validates routes and clusters here, running ProxyConfigDefaults on each.
            app.MapGatewayProxy();
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

    /// <summary>The admin API's token from the environment variable the file names; a named variable that is empty is an error.</summary>
    private static string? AdminTokenFrom(GatewayOptions options, Func<string, string?> getEnvironment, string shownFile)
    {
        if (options.Admin.TokenEnvironmentVariable is not { Length: > 0 } name)
        {
            return null;
        }
        return getEnvironment(name) is { Length: > 0 } token
            ? token
            : throw new GatewayStartupException(
                $"{shownFile}: {GatewayOptions.SectionName}:Admin:TokenEnvironmentVariable: the environment variable '{name}' is not set or empty",
                GatewayStartupException.ConfigurationExitCode);
    }

    private static string ShownPath(string fullPath)
    {
        var relative = Path.GetRelativePath(Environment.CurrentDirectory, fullPath);
        return relative.StartsWith("..", StringComparison.Ordinal) ? fullPath : relative;
    }
}

/// <summary>The configuration file in use, as a full path and as shown in messages.</summary>
internal sealed record ConfigFile(string FullPath, string ShownPath);
