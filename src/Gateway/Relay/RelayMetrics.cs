using System.Diagnostics;
using System.Diagnostics.Metrics;
using Gateway.Metrics;

namespace Gateway.Relay;

/// <summary>
/// The relay's instruments. Frames are counted in plain fields of each tunnel and added here by the keepalive sweep
/// every few seconds and when the tunnel closes, so relaying a frame touches no instrument; connection events, pings and reaps are counted as they happen
/// with tag lists built once per tunnel.
/// </summary>
internal sealed class RelayMetrics
{
    /// <summary>Who ended a tunnel, as the <c>closed_by</c> label says it.</summary>
    public static class ClosedBy
    {
        public const string Client = "client";
        public const string Backend = "backend";
        public const string GatewayReaped = "gateway_reaped";
        public const string GatewayLimit = "gateway_limit";
        public const string Drain = "drain";

        /// <summary>The client stopped reading: bytes for it stayed unsent for the keepalive timeout.</summary>
        public const string ClientStalled = "client_stalled";

        /// <summary>The tunnel's destination left the configuration: Close 1012.</summary>
        public const string DestinationRemoved = "destination_removed";

        /// <summary>An operator closed it through the admin API (one tunnel, or a destination's drain).</summary>
        public const string Admin = "admin";

        /// <summary>The tunnel reached its policy's <c>Limits:MaxLifetime</c>.</summary>
        public const string MaxLifetime = "max_lifetime";

        /// <summary>The client's token expired and its policy's <c>Identity:OnExpiry</c> is <c>Close</c>: Close 1008.</summary>
        public const string TokenExpired = "token_expired";

        /// <summary>Neither peer sent anything for the cluster's <c>HttpRequest:ActivityTimeout</c>.</summary>
        public const string IdleTimeout = "idle_timeout";
    }

    /// <summary>Which peer of a tunnel, as the <c>side</c> label says it.</summary>
    public static class Side
    {
        public const string Client = "client";
        public const string Backend = "backend";
    }

    private readonly UpDownCounter<long> _active;
    private readonly Counter<long> _opened;
    private readonly Counter<long> _closed;
    private readonly Histogram<double> _handshakeDuration;
    private readonly Histogram<double> _lifetime;
    private readonly Counter<long> _pingsSent;
    private readonly Counter<long> _pongsReceived;
    private readonly Histogram<double> _pingRoundTrip;
    private readonly Counter<long> _reaped;
    private readonly Counter<long> _gatewayCloses;
    private readonly Counter<long> _messages;
    private readonly Counter<long> _bytes;
    private readonly Counter<long> _rateLimited;
    private readonly InternalTraffic _internalTraffic;
    private readonly bool _records = true;

    public RelayMetrics(GatewayMeter meter)
    {
        _internalTraffic = meter.InternalTraffic;
        var m = meter.Meter;
        _active = m.CreateUpDownCounter<long>("gateway.websocket.connections.active", "{connection}",
            "Proxied WebSocket connections open now, by route, cluster, destination, protocol and scheme");
        _opened = m.CreateCounter<long>("gateway.websocket.connections.opened", "{connection}",
            "Proxied WebSocket connections established (the backend answered the upgrade)");
        _closed = m.CreateCounter<long>("gateway.websocket.connections.closed", "{connection}",
            "Proxied WebSocket connections ended, by close code and by who closed (client, client_stalled, backend, gateway_reaped, gateway_limit, max_lifetime, token_expired, destination_removed, admin, drain)");
        _handshakeDuration = m.CreateHistogram<double>("gateway.websocket.handshake.duration", "s",
            "From the gateway receiving the handshake to the upgrade being sent to the client, backend time included",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10] });
        _lifetime = m.CreateHistogram<double>("gateway.websocket.connection.duration", "s",
            "How long proxied WebSocket connections lived",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400] });
        _pingsSent = m.CreateCounter<long>("gateway.keepalive.pings_sent", "{ping}", "Pings the gateway sent into idle tunnels, by side");
        _pongsReceived = m.CreateCounter<long>("gateway.keepalive.pongs_received", "{pong}", "Pongs answering the gateway's pings (swallowed), by side");
        _pingRoundTrip = m.CreateHistogram<double>("gateway.keepalive.ping_rtt", "s", "Round-trip time of the gateway's pings, by side",
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5] });
        _reaped = m.CreateCounter<long>("gateway.keepalive.peers_reaped", "{peer}", "Peers given up on because they stopped answering pings, by side and route");
        _gatewayCloses = m.CreateCounter<long>("gateway.relay.gateway_closes", "{close}", "Close frames the gateway initiated, by side, code and route");
        _messages = m.CreateCounter<long>("gateway.relay.messages", "{message}", "WebSocket data messages relayed, by route and direction (added every few seconds while a tunnel is open, and when it closes)");
        _bytes = m.CreateCounter<long>("gateway.relay.payload", "By", "WebSocket data payload relayed, by route and direction (added every few seconds while a tunnel is open, and when it closes)");
        _rateLimited = m.CreateCounter<long>("gateway.relay.rate_limited", "{frame}",
            "Data frames a rate limit acted on, by route, direction and action (close: the tunnel was closed; hold: reading waited for the bucket; drop: the message was not forwarded)");
        Unrecorded = new RelayMetrics(this);
    }

    /// <summary>The same instruments, never recorded into: for the gateway's own tunnels (the startup warm-up's).</summary>
    private RelayMetrics(RelayMetrics recorded)
    {
        (_active, _opened, _closed, _handshakeDuration, _lifetime) = (recorded._active, recorded._opened, recorded._closed, recorded._handshakeDuration, recorded._lifetime);
        (_pingsSent, _pongsReceived, _pingRoundTrip, _reaped) = (recorded._pingsSent, recorded._pongsReceived, recorded._pingRoundTrip, recorded._reaped);
        (_gatewayCloses, _messages, _bytes, _rateLimited) = (recorded._gatewayCloses, recorded._messages, recorded._bytes, recorded._rateLimited);
        _internalTraffic = recorded._internalTraffic;
        _records = false;
        Unrecorded = this;
    }

    private RelayMetrics Unrecorded { get; }

    /// <summary>Whether a route's tunnels are counted and logged: the gateway's own (the warm-up's) are not.</summary>
    internal bool Records(string route) => !_internalTraffic.Is(route);

    /// <summary>The instruments for one route's tunnels: these, or for the gateway's own traffic, ones that record nothing.</summary>
    internal RelayMetrics For(string route) => Records(route) ? this : Unrecorded;

    /// <summary>The labels of one tunnel's connection gauge, built once when it opens.</summary>
    internal static TagList ConnectionTags(string route, string cluster, string destination, string protocol, string scheme) => new()
    {
        { "route", route },
        { "cluster", cluster },
        { "destination", destination },
        { "protocol", protocol },
        { "scheme", scheme },
    };

    internal void Opened(in TagList tags, string route, string protocol, TimeSpan handshake)
    {
        if (!_records)
        {
            return;
        }
        _active.Add(1, tags);
        _opened.Add(1, tags);
        _handshakeDuration.Record(handshake.TotalSeconds, new KeyValuePair<string, object?>("route", route), new KeyValuePair<string, object?>("protocol", protocol));
    }

    internal void Closed(in TagList tags, string route, string cluster, string closedBy, ushort code, TimeSpan lifetime)
    {
        if (!_records)
        {
            return;
        }
        _active.Add(-1, tags);
        var closed = new TagList { { "route", route }, { "cluster", cluster }, { "closed_by", closedBy }, { "code", CodeLabel(code) } };
        _closed.Add(1, closed);
        _lifetime.Record(lifetime.TotalSeconds, new KeyValuePair<string, object?>("route", route), new KeyValuePair<string, object?>("closed_by", closedBy));
    }

    /// <summary>What a tunnel relayed since its last report: from the sweep while it is open, and when it closes.</summary>
    internal void Relayed(string route, long messagesFromClient, long bytesFromClient, long messagesFromBackend, long bytesFromBackend)
    {
        if (!_records)
        {
            return;
        }
        var toBackend = new TagList { { "route", route }, { "direction", "client_to_backend" } };
        var toClient = new TagList { { "route", route }, { "direction", "backend_to_client" } };
        _messages.Add(messagesFromClient, toBackend);
        _bytes.Add(bytesFromClient, toBackend);
        _messages.Add(messagesFromBackend, toClient);
        _bytes.Add(bytesFromBackend, toClient);
    }

    /// <summary>A rate limit acted on a data frame (a hold is counted each time reading waits, a drop once per message).</summary>
    internal void RateLimited(string route, bool fromClient, Configuration.RateLimitAction action)
    {
        if (_records)
        {
            _rateLimited.Add(1, new KeyValuePair<string, object?>("route", route),
                new KeyValuePair<string, object?>("direction", fromClient ? "client_to_backend" : "backend_to_client"),
                new KeyValuePair<string, object?>("action", action switch
                {
                    Configuration.RateLimitAction.Hold => "hold",
                    Configuration.RateLimitAction.Drop => "drop",
                    _ => "close",
                }));
        }
    }

    internal void PingSent(string side)
    {
        if (_records)
        {
            _pingsSent.Add(1, new KeyValuePair<string, object?>("side", side));
        }
    }

    internal void PongReceived(string side, TimeSpan roundTrip)
    {
        if (!_records)
        {
            return;
        }
        var tag = new KeyValuePair<string, object?>("side", side);
        _pongsReceived.Add(1, tag);
        _pingRoundTrip.Record(roundTrip.TotalSeconds, tag);
    }

    internal void Reaped(string side, string route)
    {
        if (_records)
        {
            _reaped.Add(1, new KeyValuePair<string, object?>("side", side), new KeyValuePair<string, object?>("route", route));
        }
    }

    internal void GatewayClose(string side, ushort code, string route)
    {
        if (_records)
        {
            _gatewayCloses.Add(1, new KeyValuePair<string, object?>("side", side), new KeyValuePair<string, object?>("code", CodeLabel(code)), new KeyValuePair<string, object?>("route", route));
        }
    }

    /// <summary>
    /// A close code as a label value. A client may send any 16-bit code, and each distinct value would be a new series:
    /// the codes RFC 6455 §7.4.1 and the IANA registry define (1000-1015) are kept as they are (constant strings,
    /// nothing allocated), every other (3000-4999 for libraries and applications, or invalid ones) is "other".
    /// </summary>
    internal static string CodeLabel(ushort code) => code switch
    {
        1000 => "1000",
        1001 => "1001",
        1002 => "1002",
        1003 => "1003",
        1004 => "1004",
        1005 => "1005",
        1006 => "1006",
        1007 => "1007",
        1008 => "1008",
        1009 => "1009",
        1010 => "1010",
        1011 => "1011",
        1012 => "1012",
        1013 => "1013",
        1014 => "1014",
        1015 => "1015",
        _ => "other",
    };
}
