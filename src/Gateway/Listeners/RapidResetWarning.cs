using Gateway.Configuration;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Gateway.Listeners;

/// <summary>
/// HTTP/2 rapid reset (CVE-2023-44487: streams opened and reset at once, by the thousand) can leave Kestrel holding
/// connections that do not complete. Each counts against <c>Kestrel:Limits:MaxConcurrentConnections</c>, so with that
/// limit set a TLS listener that offers h2 can end up refusing every new client. The gateway releases what it holds
/// for a reset stream itself; this says at load that the combination needs Kestrel's own bounds too.
/// </summary>
internal static partial class RapidResetWarning
{
    public const string MaxConcurrentConnectionsKey = $"{KestrelLimits.SectionName}:MaxConcurrentConnections";

    public static void Check(IConfiguration configuration, GatewayOptions options, ILogger logger)
    {
        if (string.IsNullOrEmpty(configuration[MaxConcurrentConnectionsKey]))
        {
            return;
        }
        var h2 = options.Listeners
            .Where(l => l.Value.Tls && ((l.Value.Protocols ?? HttpProtocols.Http1AndHttp2) & HttpProtocols.Http2) != 0)
            .Select(l => l.Key)
            .ToList();
        if (h2.Count > 0)
        {
            MaxConnectionsWithHttp2(logger, MaxConcurrentConnectionsKey, string.Join(", ", h2.Select(name => $"{GatewayOptions.SectionName}:Listeners:{name}")));
        }
    }

    [LoggerMessage(EventId = 153, Level = LogLevel.Warning,
        Message = "{Key} is set while TLS listener(s) {Listeners} offer HTTP/2: an HTTP/2 rapid reset (CVE-2023-44487) can leave connections that count against it until new clients are refused. Bound it with Kestrel:Limits:Http2:MaxStreamsPerConnection and a short Kestrel:Limits:KeepAliveTimeout, or set Protocols to Http1 on listeners that need no HTTP/2 (README: HTTP/2 rapid reset)")]
    private static partial void MaxConnectionsWithHttp2(ILogger logger, string key, string listeners);
}
