using System.Diagnostics;
using System.Diagnostics.Metrics;
using Gateway.Metrics;

namespace Gateway.Relay;

/// <summary>
/// The relay's instruments. Frames are counted in plain fields of each tunnel and added here when the tunnel
/// closes, so relaying a frame touches no instrument; pings and reaps are rare and counted as they happen.
/// </summary>
public sealed class RelayMetrics
{
    private readonly Counter<long> _pingsSent;
    private readonly Counter<long> _pongsReceived;
    private readonly Histogram<double> _pingRoundTrip;
    private readonly Counter<long> _reaped;
    private readonly Counter<long> _gatewayCloses;
    private readonly Counter<long> _messages;
    private readonly Counter<long> _bytes;

    public RelayMetrics(GatewayMeter meter)
    {
        var m = meter.Meter;
        _pingsSent = m.CreateCounter<long>("gateway.keepalive.pings_sent", "{ping}", "Pings the gateway sent into idle tunnels");
        _pongsReceived = m.CreateCounter<long>("gateway.keepalive.pongs_received", "{pong}", "Pongs answering the gateway's pings (swallowed)");
        _pingRoundTrip = m.CreateHistogram<double>("gateway.keepalive.ping_rtt", "s", "Round-trip time of the gateway's pings",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] });
        _reaped = m.CreateCounter<long>("gateway.keepalive.peers_reaped", "{peer}", "Peers given up on because they stopped answering pings");
        _gatewayCloses = m.CreateCounter<long>("gateway.relay.gateway_closes", "{close}", "Close frames the gateway initiated, by side and code");
        _messages = m.CreateCounter<long>("gateway.relay.messages", "{message}", "WebSocket data messages relayed");
        _bytes = m.CreateCounter<long>("gateway.relay.payload_bytes", "By", "WebSocket data payload bytes relayed");
    }

    internal void PingSent(string side) => _pingsSent.Add(1, new KeyValuePair<string, object?>("side", side));

    internal void PongReceived(string side, TimeSpan roundTrip)
    {
        var tag = new KeyValuePair<string, object?>("side", side);
        _pongsReceived.Add(1, tag);
        _pingRoundTrip.Record(roundTrip.TotalSeconds, tag);
    }

    internal void Reaped(string side, string route) =>
        _reaped.Add(1, new KeyValuePair<string, object?>("side", side), new KeyValuePair<string, object?>("route", route));

    internal void GatewayClose(string side, ushort code, string route) =>
        _gatewayCloses.Add(1, new KeyValuePair<string, object?>("side", side), new KeyValuePair<string, object?>("code", code), new KeyValuePair<string, object?>("route", route));

    internal void TunnelClosed(string route, long messagesFromClient, long bytesFromClient, long messagesFromBackend, long bytesFromBackend)
    {
        var toBackend = new TagList { { "route", route }, { "direction", "client_to_backend" } };
        var toClient = new TagList { { "route", route }, { "direction", "backend_to_client" } };
        _messages.Add(messagesFromClient, toBackend);
        _bytes.Add(bytesFromClient, toBackend);
        _messages.Add(messagesFromBackend, toClient);
        _bytes.Add(bytesFromBackend, toClient);
    }
}
