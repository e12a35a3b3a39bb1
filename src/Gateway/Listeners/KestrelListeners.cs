using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using Gateway.Configuration;
using Gateway.Tls;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;

namespace Gateway.Listeners;

/// <summary>Turns the configured listeners into Kestrel endpoints, and Kestrel's bind failures into one clear line.</summary>
internal static class KestrelListeners
{
    public static void Configure(KestrelServerOptions kestrel, GatewayOptions options, CertificateStore? certificates, BoundListeners bound)
    {
        // The gateway sits in front of many long-lived connections; the framework's default server header adds nothing.
        kestrel.AddServerHeader = false;

        foreach (var (name, listener) in options.Listeners)
        {
            var tag = new GatewayListener(name, $"{GatewayOptions.SectionName}:Listeners:{name}", listener.Tls, isAdmin: false);
            ListenPublic(kestrel, options, certificates, bound, listener, listener.Address, listener.Port!.Value, tag);
        }

        // A connection to a shared port may reach any process in the group, so the warm-up (which must reach this
        // process's own temporary route) gets a private loopback twin of each shared listener.
        if (options.ReusePort && options.Warmup.Enabled)
        {
            foreach (var (name, listener) in options.Listeners)
            {
                if (listener.Port is > 0)
                {
                    var tag = new GatewayListener(name, $"{GatewayOptions.SectionName}:Listeners:{name}", listener.Tls, isAdmin: false) { WarmupOnly = true };
                    ListenPublic(kestrel, options, certificates, bound, listener, "127.0.0.1", 0, tag);
                }
            }
        }

        // The admin listener is not here: it runs on a server of its own (Admin.AdminServer), which outlives these.
    }

    /// <summary>The admin listener's endpoint, on the admin server's own options.</summary>
    internal static void ConfigureAdmin(KestrelServerOptions kestrel, GatewayOptions options, BoundListeners bound)
    {
        var tag = new GatewayListener("admin", $"{GatewayOptions.SectionName}:Admin", tls: false, isAdmin: true);
        Listen(kestrel, options.Admin.Address, options.Admin.Port, endpoint =>
        {
            endpoint.Protocols = HttpProtocols.Http1;
            Tag(endpoint, tag, bound);
        });
    }

    private static void ListenPublic(KestrelServerOptions kestrel, GatewayOptions options, CertificateStore? certificates,
        BoundListeners bound, ListenerOptions listener, string address, int port, GatewayListener tag)
    {
        var protocols = listener.Protocols ?? (listener.Tls ? HttpProtocols.Http1AndHttp2 : HttpProtocols.Http1);
        Listen(kestrel, address, port, endpoint =>
        {
            endpoint.Protocols = protocols;
            Tag(endpoint, tag, bound);
            if (listener.ProxyProtocol)
            {
                // Before TLS: the balancer's header precedes the client's ClientHello. A warm-up twin needs one too (the
                // warm-up sends a LOCAL header to every port of a PROXY protocol listener).
                ProxyProtocolMiddleware.Use(endpoint, tag.Name, options.Tls.HandshakeTimeout,
                    ProxyProtocolPeers.From(listener.ProxyProtocolTrustedNetworks, $"{tag.ConfigKey}:ProxyProtocolTrustedNetworks"));
            }
            if (listener.Tls)
            {
                endpoint.UseHttps(new TlsHandshakeCallbackOptions
                {
                    OnConnection = certificates!.ForProtocols(protocols),
                    HandshakeTimeout = options.Tls.HandshakeTimeout,
                });
                if (options.Tls.ReleaseIdleBuffers)
                {
                    IdleTlsBuffers.Use(endpoint, kestrel.ApplicationServices.GetRequiredService<ILoggerFactory>().CreateLogger("Gateway.Tls"));
                }
            }
            // Last, on the connection as HTTP sees it (after the PROXY header and TLS): a plain WebSocket upgrade as the
            // first request takes the lean path; anything else reaches Kestrel's HTTP layer untouched.
            if (options.LeanUpgrades && (protocols & HttpProtocols.Http1) != 0)
            {
                LeanHttp1.LeanHttp1Connections.Use(endpoint, kestrel.ApplicationServices, listener.Tls);
            }
        });
    }

    private static void Listen(KestrelServerOptions kestrel, string address, int port, Action<ListenOptions> configure)
    {
        if (address == "*")
        {
            kestrel.ListenAnyIP(port, configure);
        }
        else if (string.Equals(address, "localhost", StringComparison.OrdinalIgnoreCase))
        {
            kestrel.ListenLocalhost(port, configure);
        }
        else
        {
            kestrel.Listen(IPAddress.Parse(address), port, configure);
        }
    }

    private static void Tag(ListenOptions endpoint, GatewayListener tag, BoundListeners bound)
    {
        bound.Add(tag, endpoint);
        endpoint.Use(next => connection =>
        {
            connection.Features.Set(tag);
            return next(connection);
        });
    }

    /// <summary>Says which listener could not be bound and why, in the operator's words.</summary>
    public static GatewayStartupException DescribeBindFailure(Exception ex, GatewayOptions options, string configFile)
    {
        var socketError = FindSocketError(ex);
        var reason = socketError switch
        {
            SocketError.AddressAlreadyInUse => "the address is already in use",
            SocketError.AccessDenied => "permission denied (ports below 1024 need root or CAP_NET_BIND_SERVICE)",
            SocketError.AddressNotAvailable => "the address does not belong to this machine",
            _ => ex.Message.TrimEnd('.'),
        };

        var key = $"{GatewayOptions.SectionName}:Listeners";
        var port = 0;
        foreach (var (name, listener) in options.Listeners)
        {
            // Kestrel names the address for most failures; a bare permission error comes from a privileged port.
            var named = listener.Port is > 0 and var p && ex.Message.Contains($":{p}", StringComparison.Ordinal);
            var privileged = socketError == SocketError.AccessDenied && listener.Port is > 0 and < 1024;
            if (named || privileged)
            {
                key = $"{GatewayOptions.SectionName}:Listeners:{name}";
                port = listener.Port!.Value;
                break;
            }
        }
        if (port == 0 && options.Admin.Enabled && ex.Message.Contains($":{options.Admin.Port}", StringComparison.Ordinal))
        {
            key = $"{GatewayOptions.SectionName}:Admin";
            port = options.Admin.Port;
        }

        var where = port == 0 ? string.Empty : $" port {port}";
        return new GatewayStartupException($"{configFile}: {key}: cannot listen on{where}: {reason}", GatewayStartupException.ListenerExitCode, ex);
    }

    private static SocketError? FindSocketError(Exception? ex)
    {
        for (; ex is not null; ex = ex.InnerException)
        {
            switch (ex)
            {
                case AddressInUseException:
                    return SocketError.AddressAlreadyInUse;
                case SocketException socket:
                    return socket.SocketErrorCode;
            }
        }
        return null;
    }

    internal static bool IsBindFailure(Exception ex) => FindSocketError(ex) is not null;
}
