using System.Buffers;
using System.Collections;
using System.IO.Pipelines;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.WebUtilities;

namespace Gateway.Listeners.LeanHttp1;

/// <summary>
/// One request on the lean HTTP/1.1 path: the request's feature collection and, in the same object, the features that
/// Kestrel's <c>Http1Connection</c> would have served (request, response, response body, upgrade, connection, lifetime,
/// body detection, endpoint, route values, trace identifier). Features the pipeline sets go to a small dictionary;
/// connection features (the listener's tag, TLS) are found through the connection's own collection, as under Kestrel.
/// </summary>
internal sealed partial class LeanExchange : IFeatureCollection, IHttpRequestFeature, IHttpResponseFeature, IHttpResponseBodyFeature,
    IHttpUpgradeFeature, IHttpConnectionFeature, IHttpRequestLifetimeFeature, IHttpRequestBodyDetectionFeature, IEndpointFeature,
    IRouteValuesFeature, IHttpRequestIdentifierFeature, ITunnelHandover
{
    private readonly ConnectionContext _connection;
    private readonly ILogger _logger;
    private Dictionary<Type, object?>? _extra;
    private int _revision;

    private string? _traceIdentifier;

    public LeanExchange(ConnectionContext connection, LeanRequestHead head, bool https, ILogger logger)
    {
        _connection = connection;
        _logger = logger;
        Scheme = https ? "https" : "http";
        Path = head.Path;
        QueryString = head.QueryString;
        RawTarget = head.RawTarget;
        Headers = head.Headers;
        // As Kestrel: a request that says Connection: close is answered with it, and nothing after it is read.
        CloseAfterResponse = head.Close;
        if (connection.RemoteEndPoint is IPEndPoint remote)
        {
            RemoteIpAddress = remote.Address;
            RemotePort = remote.Port;
        }
        if (connection.LocalEndPoint is IPEndPoint local)
        {
            LocalIpAddress = local.Address;
            LocalPort = local.Port;
        }
    }

    // ---- IFeatureCollection ----

    public bool IsReadOnly => false;

    public int Revision => _revision + _connection.Features.Revision;

    public object? this[Type key]
    {
        get
        {
            if (_extra is not null && _extra.TryGetValue(key, out var set))
            {
                return set;
            }
            if (IsOwn(key))
            {
                return this;
            }
            return _connection.Features[key];
        }
        set
        {
            _extra ??= new Dictionary<Type, object?>(4);
            if (value is null && !IsOwn(key))
            {
                _extra.Remove(key);
            }
            else
            {
                _extra[key] = value;
            }
            _revision++;
        }
    }

    private static bool IsOwn(Type key) =>
        key == typeof(IHttpRequestFeature) || key == typeof(IHttpResponseFeature) || key == typeof(IHttpResponseBodyFeature)
        || key == typeof(IHttpUpgradeFeature) || key == typeof(IHttpConnectionFeature) || key == typeof(IHttpRequestLifetimeFeature)
        || key == typeof(IHttpRequestBodyDetectionFeature) || key == typeof(IEndpointFeature) || key == typeof(IRouteValuesFeature)
        || key == typeof(IHttpRequestIdentifierFeature) || key == typeof(ITunnelHandover);

    public TFeature? Get<TFeature>() => (TFeature?)this[typeof(TFeature)];

    public void Set<TFeature>(TFeature? instance) => this[typeof(TFeature)] = instance;

    public IEnumerator<KeyValuePair<Type, object>> GetEnumerator()
    {
        foreach (var type in (Type[])[typeof(IHttpRequestFeature), typeof(IHttpResponseFeature), typeof(IHttpResponseBodyFeature),
            typeof(IHttpUpgradeFeature), typeof(IHttpConnectionFeature), typeof(IHttpRequestLifetimeFeature),
            typeof(IHttpRequestBodyDetectionFeature), typeof(IEndpointFeature), typeof(IRouteValuesFeature), typeof(IHttpRequestIdentifierFeature),
            typeof(ITunnelHandover)])
        {
            if (this[type] is { } feature)
            {
                yield return new(type, feature);
            }
        }
        if (_extra is not null)
        {
            foreach (var (type, feature) in _extra)
            {
                if (feature is not null && !IsOwn(type))
                {
                    yield return new(type, feature);
                }
            }
        }
        foreach (var pair in _connection.Features)
        {
            if (!IsOwn(pair.Key) && _extra?.ContainsKey(pair.Key) != true)
            {
                yield return pair;
            }
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    // ---- IHttpRequestFeature ----

    public string Protocol { get; set; } = "HTTP/1.1";

    public string Scheme { get; set; }

    public string Method { get; set; } = HttpMethods.Get;

    public string PathBase { get; set; } = string.Empty;

    public string Path { get; set; }

    public string QueryString { get; set; }

    public string RawTarget { get; set; }

    public IHeaderDictionary Headers { get; set; }

    public Stream Body { get; set; } = Stream.Null;

    // ---- IHttpConnectionFeature ----

    public string ConnectionId
    {
        get => _connection.ConnectionId;
        set => _connection.ConnectionId = value;
    }

    public IPAddress? RemoteIpAddress { get; set; }

    public IPAddress? LocalIpAddress { get; set; }

    public int RemotePort { get; set; }

    public int LocalPort { get; set; }

    // ---- IHttpRequestLifetimeFeature: the connection's own token (one request per connection here) ----

    // The request-timeouts middleware replaces it with a linked token for the request's time (and YARP puts it back).
    private CancellationToken? _requestAborted;

    public CancellationToken RequestAborted
    {
        get => _requestAborted ?? _connection.ConnectionClosed;
        set => _requestAborted = value;
    }

    public void Abort() => _connection.Abort(new ConnectionAbortedException("The request was aborted by the application."));

    // ---- ITunnelHandover: the tunnel that owns the connection once the request has ended at the 101 ----

    /// <summary>What the connection waits for after the request, once upgraded; null when nobody took it over.</summary>
    public Task? Held { get; private set; }

    public bool EndsRequest => true;

    public void Hold(Task tunnel)
    {
        if (!Upgraded || Held is not null)
        {
            throw new InvalidOperationException("only an upgraded connection is handed over, and once");
        }
        Held = tunnel;
    }

    // ---- the rest ----

    public bool CanHaveBody => false;

    public Endpoint? Endpoint { get; set; }

    private RouteValueDictionary? _routeValues;

    public RouteValueDictionary RouteValues
    {
        get => _routeValues ??= new RouteValueDictionary();
        set => _routeValues = value;
    }

    public string TraceIdentifier
    {
        get => _traceIdentifier ??= _connection.ConnectionId + ":00000001";
        set => _traceIdentifier = value;
    }
}
