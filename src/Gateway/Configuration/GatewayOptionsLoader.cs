using System.Net;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Gateway.Configuration;

/// <summary>Binds and validates the <c>Gateway</c> section once, at startup (listeners and TLS do not reload).</summary>
internal static class GatewayOptionsLoader
{
    /// <summary>
    /// The section bound and checked as options; what only a capability can judge (policies, networks, Kestrel's limits,
    /// source addresses) is checked by <c>GatewayConfiguration</c>, which calls this.
    /// </summary>
    public static GatewayOptions Load(IConfiguration configuration, string configDirectory)
    {
        var section = configuration.GetSection(GatewayOptions.SectionName);
        var options = new GatewayOptions();
        // Unknown keys are errors: a misspelt "Prot" must not silently mean "port 80".
        UnknownKeys.Check(section, typeof(GatewayOptions));
        try
        {
            section.Bind(options);
        }
        catch (InvalidOperationException ex)
        {
            // "Failed to convert configuration value 'eighty' at 'Gateway:Listeners:ws:Port' to type ...": it names the key.
            throw new GatewayConfigurationException(GatewayOptions.SectionName, BinderMessage(ex), ex);
        }

        if (!section.GetSection(nameof(GatewayOptions.Listeners)).Exists())
        {
            options.Listeners["ws"] = new ListenerOptions { Port = 80 };
            options.Listeners["wss"] = new ListenerOptions { Port = 443, Tls = true };
        }

        Validate(options);
        ResolvePaths(options, configDirectory);
        return options;
    }

    private static void Validate(GatewayOptions options)
    {
        const string listeners = $"{GatewayOptions.SectionName}:{nameof(GatewayOptions.Listeners)}";
        if (options.Listeners.Count == 0)
        {
            throw new GatewayConfigurationException(listeners, "at least one listener is required");
        }

        var seen = new Dictionary<(string, int), string>();
        foreach (var (name, listener) in options.Listeners)
        {
            var key = $"{listeners}:{name}";
            if (listener.Port is not { } port)
            {
                throw new GatewayConfigurationException($"{key}:Port", "is required");
            }
            if (port is < 0 or > 65535)
            {
                throw new GatewayConfigurationException($"{key}:Port", $"{port} is not a port number (0-65535)");
            }
            if (!IsValidAddress(listener.Address))
            {
                throw new GatewayConfigurationException($"{key}:Address", $"'{listener.Address}' is not '*', 'localhost' or an IP address");
            }
            if (listener.Protocols is { } protocols && !listener.Tls && protocols.HasFlag(HttpProtocols.Http3))
            {
                throw new GatewayConfigurationException($"{key}:Protocols", "HTTP/3 needs TLS");
            }
            if (listener.ProxyProtocol && listener.Protocols is { } quic && quic.HasFlag(HttpProtocols.Http3))
            {
                // The header travels on TCP connections; HTTP/3 runs over QUIC, which would reach the gateway without one.
                throw new GatewayConfigurationException($"{key}:Protocols", "HTTP/3 (QUIC) carries no PROXY protocol header: use Http1AndHttp2 on a listener with ProxyProtocol");
            }
            if (listener.ProxyProtocolTrustedNetworks.Count > 0 && !listener.ProxyProtocol)
            {
                throw new GatewayConfigurationException($"{key}:ProxyProtocolTrustedNetworks", "applies only with ProxyProtocol: true");
            }
            CheckNetworks(listener.ProxyProtocolTrustedNetworks, $"{key}:ProxyProtocolTrustedNetworks");
            if (port != 0 && !seen.TryAdd((listener.Address.ToLowerInvariant(), port), name))
            {
                throw new GatewayConfigurationException($"{key}:Port", $"port {port} is already used by listener '{seen[(listener.Address.ToLowerInvariant(), port)]}'");
            }
        }

        const string admin = $"{GatewayOptions.SectionName}:{nameof(GatewayOptions.Admin)}";
        if (options.Admin.Enabled)
        {
            if (options.Admin.Port is < 0 or > 65535)
            {
                throw new GatewayConfigurationException($"{admin}:Port", $"{options.Admin.Port} is not a port number (0-65535)");
            }
            if (!IsValidAddress(options.Admin.Address))
            {
                throw new GatewayConfigurationException($"{admin}:Address", $"'{options.Admin.Address}' is not '*', 'localhost' or an IP address");
            }
        }

        for (var i = 0; i < options.Tls.Certificates.Count; i++)
        {
            var certificate = options.Tls.Certificates[i];
            var key = $"{GatewayOptions.SectionName}:Tls:Certificates:{i}";
            if (string.IsNullOrWhiteSpace(certificate.Path))
            {
                throw new GatewayConfigurationException($"{key}:Path", "is required (a PEM certificate with KeyPath, or a PFX file)");
            }
            for (var h = 0; h < certificate.Hosts.Count; h++)
            {
                var host = certificate.Hosts[h];
                if (string.IsNullOrWhiteSpace(host) || host.Contains('*') && (!host.StartsWith("*.", StringComparison.Ordinal) || host.LastIndexOf('*') != 0))
                {
                    throw new GatewayConfigurationException($"{key}:Hosts:{h}", $"'{host}' is not a host name or a '*.domain' wildcard");
                }
            }
        }

        TelemetryValidation.Validate(options.Telemetry);
        CheckNetworks(options.TrustedForwarders, $"{GatewayOptions.SectionName}:TrustedForwarders");
        AccessLogOptions.Validate(options.AccessLog, $"{GatewayOptions.SectionName}:{nameof(GatewayOptions.AccessLog)}");

        if (options.Tls.HandshakeTimeout <= TimeSpan.Zero)
        {
            throw new GatewayConfigurationException($"{GatewayOptions.SectionName}:Tls:HandshakeTimeout", "must be positive");
        }
        if (options.Tls.CertificateCheckInterval < TimeSpan.Zero)
        {
            throw new GatewayConfigurationException($"{GatewayOptions.SectionName}:Tls:CertificateCheckInterval", "must not be negative (00:00:00 turns the periodic check off)");
        }
        if (options.ListenBacklog < 1)
        {
            throw new GatewayConfigurationException($"{GatewayOptions.SectionName}:ListenBacklog", "must be at least 1");
        }
        if (options.ShutdownTimeout < TimeSpan.Zero)
        {
            throw new GatewayConfigurationException($"{GatewayOptions.SectionName}:ShutdownTimeout", "must not be negative");
        }
        if (options.Drain.Delay < TimeSpan.Zero)
        {
            throw new GatewayConfigurationException($"{GatewayOptions.SectionName}:Drain:Delay", "must not be negative");
        }
        if (options.Drain.Period < TimeSpan.Zero)
        {
            throw new GatewayConfigurationException($"{GatewayOptions.SectionName}:Drain:Period", "must not be negative");
        }
        if (options.Drain.Delay + options.Drain.Period > options.ShutdownTimeout)
        {
            throw new GatewayConfigurationException($"{GatewayOptions.SectionName}:ShutdownTimeout",
                $"must be at least Drain:Delay + Drain:Period ({options.Drain.Delay + options.Drain.Period:c}), or the drain is cut short");
        }
        if (options.Warmup.Enabled && options.Warmup.MaxDuration <= TimeSpan.Zero)
        {
            throw new GatewayConfigurationException($"{GatewayOptions.SectionName}:Warmup:MaxDuration", "must be positive (set Warmup:Enabled to false to skip the warm-up)");
        }
    }

    private static void ResolvePaths(GatewayOptions options, string configDirectory)
    {
        // Relative paths are relative to the configuration file, so the same file works from any working directory.
        foreach (var certificate in options.Tls.Certificates)
        {
            certificate.Path = Resolve(certificate.Path, configDirectory);
            certificate.KeyPath = Resolve(certificate.KeyPath, configDirectory);
        }
        options.DataProtection.KeyDirectory = Resolve(options.DataProtection.KeyDirectory, configDirectory);
        foreach (var policy in options.WebSocketPolicies.Values)
        {
            var keys = policy.Identity.SigningKeys;
            for (var i = 0; i < keys.Count; i++)
            {
                keys[i] = Resolve(keys[i], configDirectory) ?? keys[i];
            }
        }
    }

    private static string? Resolve(string? path, string directory) =>
        string.IsNullOrWhiteSpace(path) ? null : Path.GetFullPath(path, directory);

    internal static bool IsValidAddress(string address) =>
        address is "*" || string.Equals(address, "localhost", StringComparison.OrdinalIgnoreCase) || IPAddress.TryParse(address, out _);

    private static string BinderMessage(InvalidOperationException ex)
    {
        var message = ex.Message.TrimEnd('.');
        if (ex.InnerException is { } inner)
        {
            message += ": " + inner.Message.TrimEnd('.');
        }
        return message;
    }

    private static void CheckNetworks(List<string> networks, string key)
    {
        for (var i = 0; i < networks.Count; i++)
        {
            if (!NetworkSyntax.TryParse(networks[i], out _))
            {
                throw new GatewayConfigurationException($"{key}:{i}", $"'{networks[i]}' is not a network (10.0.0.0/8, 2001:db8::/32) or an IP address");
            }
        }
    }
}
