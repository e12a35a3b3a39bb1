using Gateway.AccessLogging;
using Gateway.Handshake;
using Gateway.LoadBalancing;
using Microsoft.AspNetCore.Http.Features;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace Gateway.Relay;

/// <summary>
/// The gateway's forwarder for WebSocket handshakes, in YARP's proxy pipeline after load balancing: YARP has decided
/// where (route, affinity, balancing, health); this step takes the destination, sends the handshake through the
/// route's transforms and the cluster's client (<c>.Backend.cs</c>), answers the client's 101, and hands the relaying
/// tunnel over (<c>.Upgrade.cs</c>, <see cref="Listeners.ITunnelHandover"/>) so that every middleware that ran the
/// handshake returns at the 101; when the tunnel ends it gives back the destination's count and the gate's permits and
/// reports the outcome to the cluster's passive health policy. It does not call the rest of the pipeline for a
/// handshake; plain HTTP requests go on to passive health and YARP's forwarder untouched.
/// </summary>
/// <remarks>
/// Only YARP's public contracts: <see cref="IReverseProxyFeature"/> for the route, cluster and destinations,
/// <see cref="HttpTransformer"/> for the route's transforms, the cluster's <see cref="HttpMessageInvoker"/>,
/// <see cref="IForwarderErrorFeature"/> for what failed, and <see cref="IPassiveHealthCheckPolicy"/> for the verdict.
/// Written by hand because YARP's forwarder copies an upgraded connection with loops of its own and keeps its
/// request, response and loop state for the tunnel's whole life; this one hands both connections to a
/// <see cref="RelayTunnel"/> and keeps nothing else.
/// </remarks>
internal sealed partial class TunnelForwarder
{
    private readonly RequestDelegate _next;
    private readonly KeepAliveSweeper _sweeper;
    private readonly RelayMetrics _metrics;
    private readonly ILogger<RelayTunnel> _tunnelLogger;
    private readonly ILogger<TunnelForwarder> _logger;
    private readonly AccessLogWriter _accessLog;
    private readonly Dictionary<string, IPassiveHealthCheckPolicy> _passivePolicies;
    private readonly Proxy.ProxyMetrics _proxyMetrics;

    public TunnelForwarder(RequestDelegate next, KeepAliveSweeper sweeper, RelayMetrics metrics, ILogger<RelayTunnel> tunnelLogger,
        ILogger<TunnelForwarder> logger, AccessLogWriter accessLog, IEnumerable<IPassiveHealthCheckPolicy> passivePolicies, Proxy.ProxyMetrics proxyMetrics)
    {
        _proxyMetrics = proxyMetrics;
        _next = next;
        _sweeper = sweeper;
        _metrics = metrics;
        _tunnelLogger = tunnelLogger;
        _logger = logger;
        _accessLog = accessLog;
        _passivePolicies = passivePolicies.ToDictionary(policy => policy.Name, StringComparer.OrdinalIgnoreCase);
    }

    public Task InvokeAsync(HttpContext context) =>
        context.Features.Get<WebSocketHandshake>() is { } handshake && context.GetReverseProxyFeature().Route.Cluster is { } cluster
            ? ForwardAsync(context, handshake, cluster)
            : _next(context);

    private async Task ForwardAsync(HttpContext context, WebSocketHandshake handshake, ClusterState cluster)
    {
        var started = _sweeper.Time.GetTimestamp();
        var proxy = context.GetReverseProxyFeature();
        var destinations = proxy.AvailableDestinations;
        if (destinations.Count == 0)
        {
            // As YARP's own last step: nothing healthy to send to is the cluster's state, not a destination's fault.
            Log.NoAvailableDestinations(_logger, cluster.ClusterId);
            context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
            context.Features.Set<IForwarderErrorFeature>(new ForwarderFailure(ForwarderError.NoAvailableDestinations, null));
            return;
        }
        // Load balancing leaves one; a cluster without a policy step leaves them all, and any is as good (as in YARP).
        var destination = destinations.Count == 1 ? destinations[0] : destinations[Random.Shared.Next(destinations.Count)];
        proxy.ProxiedDestination = destination;

        // The gateway's own tunnels (the startup warm-up's) are neither counted nor logged: they are not the operator's traffic.
        var recorded = _metrics.Records(handshake.RouteId);
        if (!recorded && context.Features.Get<IHttpMetricsTagsFeature>() is { } hostingMetrics)
        {
            // Nor by ASP.NET Core's http.server.request.duration, whose route label would name the warm-up's route.
            hostingMetrics.MetricsDisabled = true;
        }
        var tunnel = new RelayTunnel(handshake, _sweeper, _metrics.For(handshake.RouteId), _tunnelLogger,
            recorded && _accessLog.Enabled ? _accessLog : null, started);

        DestinationLoad.TunnelOpened(destination);
        var handedOver = false;
        try
        {
            handedOver = await TunnelAsync(context, handshake, tunnel, proxy, destination);
        }
        finally
        {
            if (!handedOver)
            {
                // No tunnel: the handshake's failure or refusal is on the request, for passive health to read.
                tunnel.Complete();
                DestinationLoad.TunnelClosed(destination);
                ReportToPassiveHealth(context, cluster, destination);
            }
        }
    }

    /// <summary>
    /// The tunnel goes on after the middleware returned at the 101 (and after the request itself on the lean HTTP/1.1
    /// path): its end gives back what the handshake held for it: the destination's count, the room's count, the gate's
    /// permits, and passive health's verdict and the error count, which no request is left to carry.
    /// </summary>
    private async Task RelayHandedOverAsync(RelayTunnel tunnel, WebSocketHandshake handshake, IDisposable? keyLease, ClusterState cluster,
        DestinationState destination, TimeSpan activityTimeout)
    {
        try
        {
            await tunnel.RelayAsync(activityTimeout).ConfigureAwait(false);
        }
        catch (Exception ex)
        {
            // The connection's owner waits on this task: it must end, whatever happened.
            Log.RelayFailed(_tunnelLogger, tunnel.RouteId, ex);
        }
        finally
        {
            tunnel.Complete();
            DestinationLoad.TunnelClosed(destination);
            keyLease?.Dispose();
            handshake.Release();
            if (tunnel.EndedByBackendFault)
            {
                // What the proxy's error count would have read from the request, had it still been running.
                _proxyMetrics.Failed(cluster.ClusterId, destination.DestinationId, ForwarderFailure.BackendFault.Error);
            }
            if (PassiveHealthOn(cluster))
            {
                // The request is gone: passive health reads the verdict from a context of its own, as it would from the
                // request's. Made only for a cluster that has it (a context and its features per tunnel end otherwise).
                var outcome = new DefaultHttpContext();
                if (tunnel.EndedByBackendFault)
                {
                    outcome.Features.Set<IForwarderErrorFeature>(ForwarderFailure.BackendFault);
                }
                ReportToPassiveHealth(outcome, cluster, destination);
            }
        }
    }

    /// <summary>
    /// What YARP's passive health step would do after its forwarder: the cluster's policy hears of each handshake and
    /// tunnel once, when it is over. A tunnel the client or the gateway ended carries no error, so it never counts
    /// against the backend.
    /// </summary>
    private void ReportToPassiveHealth(HttpContext context, ClusterState cluster, DestinationState destination)
    {
        var passive = cluster.Model.Config.HealthCheck?.Passive;
        if (passive?.Enabled != true)
        {
            return;
        }
        var name = string.IsNullOrEmpty(passive.Policy) ? HealthCheckConstants.PassivePolicy.TransportFailureRate : passive.Policy;
        if (_passivePolicies.TryGetValue(name, out var policy))
        {
            policy.RequestProxied(context, cluster, destination);
        }
    }

    private static bool PassiveHealthOn(ClusterState cluster) => cluster.Model.Config.HealthCheck?.Passive?.Enabled == true;
}
