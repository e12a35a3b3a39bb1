using System.Net;
using System.Net.Sockets;
using Gateway.Configuration;
using Microsoft.AspNetCore.HttpOverrides;

namespace Gateway.Handshake;

/// <summary>
/// <c>Gateway:TrustedForwarders</c>: networks whose <c>X-Forwarded-For</c> names the real client (a load balancer in
/// front of the gateway). Off by default: a header anyone can send must not choose whose limits a request counts
/// against. Applied with ASP.NET Core's forwarded-headers middleware, so every per-client rule (and YARP's own
/// X-Forwarded-For to the backends) sees the same client address.
/// </summary>
internal static class TrustedForwarders
{
    /// <summary>
    /// Adds ASP.NET Core's forwarded-headers middleware for the configured networks. It is in the pipeline even when none
    /// are configured (then it only passes requests on), so that a reload can start or stop trusting a forwarder.
    /// </summary>
    public static IApplicationBuilder UseTrustedForwarders(this IApplicationBuilder app)
    {
        var set = app.ApplicationServices.GetRequiredService<TrustedForwarderSet>();
        set.Apply(app.ApplicationServices.GetRequiredService<GatewayOptions>().TrustedForwarders);
        return app.Use(next =>
        {
            set.Next = next;
            return context => set.Current is { } forwarded ? forwarded.Invoke(context) : next(context);
        });
    }

    /// <summary>The options of the framework's middleware for these networks (ASP.NET Core's own defaults cleared).</summary>
    internal static ForwardedHeadersOptions OptionsFor(IReadOnlyList<string> configured)
    {
        var options = new ForwardedHeadersOptions
        {
            ForwardedHeaders = ForwardedHeaders.XForwardedFor,
            // Walk X-Forwarded-For from the right for as long as each hop is trusted (a chain of our own proxies);
            // the first untrusted address is the client.
            ForwardLimit = null,
        };
        // ASP.NET Core trusts loopback by default; only what the operator lists is trusted here.
        options.KnownProxies.Clear();
        options.KnownIPNetworks.Clear();
        foreach (var entry in configured)
        {
            NetworkSyntax.TryParse(entry, out var network);
            options.KnownIPNetworks.Add(network);
            if (network.BaseAddress.AddressFamily == AddressFamily.InterNetwork)
            {
                // A dual-stack listener sees IPv4 peers as IPv4-mapped IPv6 addresses.
                options.KnownIPNetworks.Add(new System.Net.IPNetwork(network.BaseAddress.MapToIPv6(), 96 + network.PrefixLength));
            }
        }
        return options;
    }
}

/// <summary>The forwarders trusted now: the framework's middleware for them, replaced when the file reloads.</summary>
internal sealed class TrustedForwarderSet(ILoggerFactory loggers)
{
    private volatile ForwardedHeadersMiddleware? _current;

    internal RequestDelegate? Next { get; set; }

    internal ForwardedHeadersMiddleware? Current => _current;

    /// <summary>Trusts exactly these networks (validated at load) from the next request on.</summary>
    internal void Apply(IReadOnlyList<string> configured)
    {
        if (configured.Count == 0)
        {
            _current = null;
            return;
        }
        var options = Microsoft.Extensions.Options.Options.Create(TrustedForwarders.OptionsFor(configured));
        _current = new ForwardedHeadersMiddleware(context => Next!(context), loggers, options);
        Log.TrustedForwarders(loggers.CreateLogger(RefusalReporter.LogCategory), string.Join(", ", configured));
    }
}
