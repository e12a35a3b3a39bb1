using Gateway.Telemetry;
using Yarp.ReverseProxy.Forwarder;

namespace Gateway.Proxy;

/// <summary>
/// YARP's client factory with <see cref="UpgradeConnector"/> in front of its SocketsHttpHandler, except for clusters
/// whose HttpClient settings only SocketsHttpHandler honours (a web proxy, header encodings). The connector binds its
/// sockets to <c>Gateway:Upstream:SourceAddresses</c>. While handshakes are traced, <see cref="TraceContextHandler"/>
/// goes in front of both, so every backend handshake carries its span's context.
/// </summary>
internal sealed class GatewayHttpClientFactory(ILogger<ForwarderHttpClientFactory> logger, SourceAddresses sources,
    SourceAddressExhaustion exhaustion, HandshakeTracing tracing) : ForwarderHttpClientFactory(logger)
{
    protected override HttpMessageHandler WrapHandler(ForwarderHttpClientContext context, HttpMessageHandler handler)
    {
        var config = context.NewConfig;
        if (config.WebProxy is null && config.RequestHeaderEncoding is null && config.ResponseHeaderEncoding is null)
        {
            handler = new UpgradeConnector(handler, sources, exhaustion);
        }
        return tracing.Enabled ? new TraceContextHandler(handler) : handler;
    }
}
