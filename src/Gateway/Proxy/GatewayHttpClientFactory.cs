using Gateway.Handshake;
using System.Diagnostics;
using Gateway.Telemetry;
using Yarp.ReverseProxy.Forwarder;

namespace Gateway.Proxy;

/// <summary>
/// YARP's client factory with <see cref="UpgradeConnector"/> in front of its SocketsHttpHandler, except for clusters
/// whose HttpClient settings only SocketsHttpHandler honours (a web proxy, header encodings). The connector binds its
/// sockets to <c>Gateway:Upstream:SourceAddresses</c>. While handshakes are traced, SocketsHttpHandler propagates no
/// trace context of its own: <see cref="TraceContextTransforms"/> has put the handshake span's on the request, and YARP's
/// propagator would replace it with that of an <c>HttpRequestOut</c> activity nothing exports (the connector propagates
/// nothing either way). Plain HTTP requests then carry the client's trace headers as sent, as with tracing off.
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
        return handler;
    }

    protected override void ConfigureHandler(ForwarderHttpClientContext context, SocketsHttpHandler handler)
    {
        base.ConfigureHandler(context, handler);
        if (tracing.Enabled)
        {
            handler.ActivityHeadersPropagator = DistributedContextPropagator.CreateNoOutputPropagator();
        }
    }
}
