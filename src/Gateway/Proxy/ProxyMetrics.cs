using System.Diagnostics.Metrics;
using Gateway.LoadBalancing;
using Gateway.Metrics;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Model;

namespace Gateway.Proxy;

/// <summary>
/// What the gateway exports per destination of YARP's: failed forwards and connect retries, health, and the tunnels
/// open on each as load balancing counts them.
/// </summary>
internal sealed class ProxyMetrics
{
    private readonly Counter<long> _errors;
    private readonly Counter<long> _connectRetries;
    private readonly InternalTraffic _internalTraffic;

    public ProxyMetrics(GatewayMeter meter, IProxyStateLookup state)
    {
        _internalTraffic = meter.InternalTraffic;
        _errors = meter.Meter.CreateCounter<long>("gateway.proxy.errors", "{request}",
            "Requests YARP could not forward, by cluster, destination and YARP's error (Request = the backend could not be reached)");
        _connectRetries = meter.Meter.CreateCounter<long>("gateway.proxy.connect_retries", "{retry}",
            "Requests sent to another destination because this one could not be connected to, by cluster and the destination that failed");
        meter.Meter.CreateObservableGauge("gateway.destination.health", () => ReadHealth(state, _internalTraffic), "1",
            "1 when a destination is usable (neither active nor passive health checks call it unhealthy), 0 when not");
        // Read at collection from the count the balancer reads, so the series and the balancing never disagree; a
        // destination a reload removed leaves the series with its configuration, as its health does.
        meter.Meter.CreateObservableGauge("gateway.destination.tunnels", () => ReadTunnels(state, _internalTraffic), "{tunnel}",
            "WebSocket tunnels open on a destination as load balancing counts them: a handshake counts from the moment its destination is chosen until its tunnel ends");
    }

    internal void Failed(string cluster, string destination, ForwarderError error)
    {
        if (_internalTraffic.Is(cluster))
        {
            return;
        }
        _errors.Add(1, new KeyValuePair<string, object?>("cluster", cluster), new KeyValuePair<string, object?>("destination", destination),
            new KeyValuePair<string, object?>("error", error.ToString()));
    }

    internal void ConnectRetried(string cluster, string destination)
    {
        if (!_internalTraffic.Is(cluster))
        {
            _connectRetries.Add(1, new KeyValuePair<string, object?>("cluster", cluster), new KeyValuePair<string, object?>("destination", destination));
        }
    }

    private static IEnumerable<Measurement<int>> ReadTunnels(IProxyStateLookup state, InternalTraffic internalTraffic)
    {
        foreach (var cluster in state.GetClusters())
        {
            if (internalTraffic.Is(cluster.ClusterId))
            {
                continue;
            }
            foreach (var destination in cluster.Destinations.Values)
            {
                yield return new Measurement<int>(DestinationLoad.Tunnels(destination),
                    new KeyValuePair<string, object?>("cluster", cluster.ClusterId),
                    new KeyValuePair<string, object?>("destination", destination.DestinationId));
            }
        }
    }

    private static IEnumerable<Measurement<int>> ReadHealth(IProxyStateLookup state, InternalTraffic internalTraffic)
    {
        foreach (var cluster in state.GetClusters())
        {
            if (internalTraffic.Is(cluster.ClusterId))
            {
                continue;
            }
            foreach (var destination in cluster.Destinations.Values)
            {
                var health = destination.Health;
                var usable = health.Active != DestinationHealth.Unhealthy && health.Passive != DestinationHealth.Unhealthy;
                yield return new Measurement<int>(usable ? 1 : 0,
                    new KeyValuePair<string, object?>("cluster", cluster.ClusterId),
                    new KeyValuePair<string, object?>("destination", destination.DestinationId));
            }
        }
    }
}

/// <summary>Counts YARP's forwarding failures, read from the error feature YARP leaves on the request.</summary>
internal sealed class ProxyErrorsMiddleware
{
    private readonly RequestDelegate _next;
    private readonly ProxyMetrics _metrics;

    public ProxyErrorsMiddleware(RequestDelegate next, ProxyMetrics metrics)
    {
        _next = next;
        _metrics = metrics;
    }

    public async Task InvokeAsync(HttpContext context)
    {
        await _next(context);
        if (context.Features.Get<IForwarderErrorFeature>() is { } error)
        {
            var proxy = context.GetReverseProxyFeature();
            _metrics.Failed(proxy.Cluster?.Config.ClusterId ?? string.Empty, proxy.ProxiedDestination?.DestinationId ?? string.Empty, error.Error);
        }
    }
}
