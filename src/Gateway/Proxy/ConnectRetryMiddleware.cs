using Gateway.Health;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Primitives;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace Gateway.Proxy;

/// <summary>
/// When the destination load balancing chose cannot be connected to (refused, unreachable, connect timeout), runs the
/// rest of YARP's proxy pipeline again without it, so session affinity and load balancing choose another: a dead
/// backend costs the client one failed connect instead of a 502. The failed destination is reported to passive health
/// at once, so the next requests do not choose it. Nothing reached the backend and nothing was sent to the client, so
/// sending the request again is safe whatever its method; only requests without a body are retried, since the
/// forwarder reads the body as it sends it.
/// </summary>
/// <remarks>
/// Goes after the handshake gate and the relay (they run once per request) and before session affinity, load
/// balancing and passive health (they run once per attempt). Between attempts the request is put back as the forwarder
/// found it: YARP's forwarder refuses a response whose status is set, and leaves its error feature, a 502 and the
/// affinity transform's Set-Cookie for the failed destination behind.
/// </remarks>
internal sealed class ConnectRetryMiddleware
{
    private const string Retrying = "trying another destination";
    private const string NoneLeft = "no other destination to try";
    private const string NoAttemptsLeft = "no attempts left";
    private const string PastDeadline = "past the retry deadline";

    private readonly RequestDelegate _next;
    private readonly ProxyMetrics _metrics;
    private readonly IDestinationHealthUpdater _health;
    private readonly ConnectRetryOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;

    public ConnectRetryMiddleware(RequestDelegate next, ProxyMetrics metrics, IDestinationHealthUpdater health,
        ConnectRetryOptions options, TimeProvider time, ILogger<ConnectRetryMiddleware> logger)
    {
        _next = next;
        _metrics = metrics;
        _health = health;
        _options = options;
        _time = time;
        _logger = logger;
    }

    public Task InvokeAsync(HttpContext context)
    {
        // Kestrel knows whether a body can follow the head (a WebSocket handshake, HTTP/1.1 or RFC 8441, has none);
        // a request that may carry one is forwarded once, as before.
        if (context.Features.Get<IHttpRequestBodyDetectionFeature>() is not { CanHaveBody: false })
        {
            return _next(context);
        }
        return InvokeWithRetriesAsync(context);
    }

    private async Task InvokeWithRetriesAsync(HttpContext context)
    {
        var proxy = context.GetReverseProxyFeature();
        var candidates = proxy.AvailableDestinations;
        var started = _time.GetTimestamp();
        // What the request held before YARP's steps ran; usually nothing, so nothing is copied.
        var headersBefore = context.Response.Headers.Count == 0 ? null : context.Response.Headers.ToArray();
        var itemsBefore = context.Features.Get<IItemsFeature>()?.Items is { Count: > 0 } items ? items.Keys.ToArray() : null;
        List<DestinationState>? failed = null;

        for (var attempt = 1; ; attempt++)
        {
            await _next(context);

            if (context.Response.HasStarted || context.RequestAborted.IsCancellationRequested
                || context.Features.Get<IForwarderErrorFeature>() is not { } error
                || !ConnectFailure.TryGet(error.Error, error.Exception, out var message)
                || proxy.ProxiedDestination is not { } destination)
            {
                return;
            }

            var cluster = proxy.Route.Cluster!;
            MarkUnhealthy(proxy, cluster, destination);
            (failed ??= new List<DestinationState>(_options.MaxAttempts)).Add(destination);
            var remaining = Without(candidates, failed);
            var outcome = remaining.Length == 0 ? NoneLeft
                : attempt >= _options.MaxAttempts ? NoAttemptsLeft
                : _time.GetElapsedTime(started) >= _options.Deadline ? PastDeadline
                : Retrying;
            Log.ConnectFailed(_logger, cluster.ClusterId, destination.DestinationId, message, outcome);
            if (!ReferenceEquals(outcome, Retrying))
            {
                // The last attempt's error and status (502, or 504 for a connect timeout) stand, and count as a proxy error.
                return;
            }

            _metrics.ConnectRetried(cluster.ClusterId, destination.DestinationId);
            Reset(context, proxy, remaining, headersBefore, itemsBefore);
        }
    }

    /// <summary>
    /// Only where the cluster has passive health checks: YARP's available-destination policies ignore passive health
    /// otherwise, so the mark would keep no request away and would only turn the destination's health gauge to 0.
    /// </summary>
    private void MarkUnhealthy(IReverseProxyFeature proxy, ClusterState cluster, DestinationState destination)
    {
        var passive = proxy.Cluster.Config.HealthCheck?.Passive;
        if (passive?.Enabled == true)
        {
            _health.SetPassive(cluster, destination, DestinationHealth.Unhealthy, passive.ReactivationPeriod ?? _options.DefaultReactivationPeriod);
        }
    }

    private static DestinationState[] Without(IReadOnlyList<DestinationState> candidates, List<DestinationState> failed)
    {
        var remaining = new List<DestinationState>(candidates.Count);
        for (var i = 0; i < candidates.Count; i++)
        {
            if (!failed.Contains(candidates[i]))
            {
                remaining.Add(candidates[i]);
            }
        }
        return remaining.ToArray();
    }

    private static void Reset(HttpContext context, IReverseProxyFeature proxy, DestinationState[] remaining,
        KeyValuePair<string, StringValues>[]? headersBefore, object[]? itemsBefore)
    {
        // Status 200, no reason phrase, no headers: the forwarder refuses to run on a response that is already set.
        context.Response.Clear();
        if (headersBefore is not null)
        {
            foreach (var (name, value) in headersBefore)
            {
                context.Response.Headers[name] = value;
            }
        }
        context.Features.Set<IForwarderErrorFeature>(null);

        // Session affinity remembers in Items that the request's key matched the failed destination, and then
        // re-issues no cookie; without that entry it treats the request as YARP does one whose destination is
        // unhealthy: the failure policy (Redistribute by default) lets load balancing choose, and the cookie names the new one.
        if (context.Features.Get<IItemsFeature>()?.Items is { Count: > 0 } items)
        {
            foreach (var key in items.Keys.ToArray())
            {
                if (itemsBefore is null || Array.IndexOf(itemsBefore, key) < 0)
                {
                    items.Remove(key);
                }
            }
        }

        proxy.ProxiedDestination = null;
        proxy.AvailableDestinations = remaining;
    }
}
