using Yarp.ReverseProxy.Forwarder;

namespace Gateway.Proxy;

/// <summary>
/// YARP's client factory with <see cref="UpgradeConnector"/> in front of its SocketsHttpHandler, except for clusters
/// whose HttpClient settings only SocketsHttpHandler honours (a web proxy, header encodings). The connector binds its
/// sockets to <c>Gateway:Upstream:SourceAddresses</c>.
/// </summary>
internal sealed class GatewayHttpClientFactory(ILogger<ForwarderHttpClientFactory> logger, SourceAddresses sources,
    SourceAddressExhaustion exhaustion) : ForwarderHttpClientFactory(logger)
{
    protected override HttpMessageHandler WrapHandler(ForwarderHttpClientContext context, HttpMessageHandler handler)
    {
        var config = context.NewConfig;
        if (config.WebProxy is not null || config.RequestHeaderEncoding is not null || config.ResponseHeaderEncoding is not null)
        {
            return handler;
        }
        return new UpgradeConnector(handler, sources, exhaustion);
    }
}
