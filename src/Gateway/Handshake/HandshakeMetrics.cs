using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using Gateway.Metrics;

namespace Gateway.Handshake;

/// <summary>
/// The handshake gate's instruments. Tag lists are built once per route and reused, so counting a refusal under a
/// flood allocates nothing.
/// </summary>
internal sealed class HandshakeMetrics
{
    public const string RefusedName = "gateway.handshake.refused";

    private readonly Counter<long> _refused;
    private readonly InternalTraffic _internalTraffic;
    private readonly ConcurrentDictionary<string, KeyValuePair<string, object?>[][]> _tagsByRoute = new(StringComparer.Ordinal);

    public HandshakeMetrics(GatewayMeter meter)
    {
        _internalTraffic = meter.InternalTraffic;
        _refused = meter.Meter.CreateCounter<long>(RefusedName, "{handshake}",
            "WebSocket handshakes refused at the edge, before any backend was contacted (backend_subprotocol: after), by reason and route");
    }

    public void Refused(RefusalReason reason, string route)
    {
        if (!_refused.Enabled || _internalTraffic.Is(route))
        {
            return;
        }
        var tags = _tagsByRoute.GetOrAdd(route, static r => BuildTags(r));
        _refused.Add(1, tags[(int)reason]);
    }

    private static KeyValuePair<string, object?>[][] BuildTags(string route) =>
        Refusal.All.Select(refusal => new KeyValuePair<string, object?>[]
        {
            new("reason", refusal.Tag),
            new("route", route),
        }).ToArray();
}
