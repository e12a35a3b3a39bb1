using System.Buffers;
using System.Collections;
using System.IO.Pipelines;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;

namespace Gateway.Listeners.Takeover;

// The connection is its own feature collection, as Kestrel's transport connection is: the transport's features are the
// connection itself, and the few that Kestrel and the middleware add (or replace) live in a small array rather than a
// dictionary.
internal sealed partial class TakeoverConnection : IFeatureCollection, IConnectionIdFeature, IConnectionTransportFeature,
    IConnectionItemsFeature, IConnectionLifetimeFeature, IConnectionEndPointFeature, IMemoryPoolFeature
{
    private static long s_lastId = Random.Shared.NextInt64(1L << 40);

    private readonly MemoryPool<byte> _pool;
    private string? _connectionId;
    private IDictionary<object, object?>? _items;
    private EndPoint? _localEndPoint;
    private EndPoint? _remoteEndPoint;
    private CancellationToken _closedToken;
    private KeyValuePair<Type, object>[]? _others;
    private int _otherCount;
    private int _revision;

    public override string ConnectionId
    {
        get => _connectionId ??= Interlocked.Increment(ref s_lastId).ToString("X13", System.Globalization.CultureInfo.InvariantCulture);
        set => _connectionId = value;
    }

    public override IFeatureCollection Features => this;

    public override IDictionary<object, object?> Items
    {
        get => _items ??= new ConnectionItems();
        set => _items = value;
    }

    public override EndPoint? LocalEndPoint
    {
        get => _localEndPoint;
        set => _localEndPoint = value;
    }

    public override EndPoint? RemoteEndPoint
    {
        get => _remoteEndPoint;
        set => _remoteEndPoint = value;
    }

    public override CancellationToken ConnectionClosed
    {
        get => _closedToken;
        set => _closedToken = value;
    }

    public MemoryPool<byte> MemoryPool => _pool;

    bool IFeatureCollection.IsReadOnly => false;

    int IFeatureCollection.Revision => _revision;

    object? IFeatureCollection.this[Type key]
    {
        get => Find(key) ?? (IsOwn(key) ? this : null);
        set => SetOther(key, value);
    }

    TFeature? IFeatureCollection.Get<TFeature>() where TFeature : default => (TFeature?)((IFeatureCollection)this)[typeof(TFeature)];

    void IFeatureCollection.Set<TFeature>(TFeature? instance) where TFeature : default => SetOther(typeof(TFeature), instance);

    private static bool IsOwn(Type key) =>
        key == typeof(IConnectionIdFeature) || key == typeof(IConnectionTransportFeature) || key == typeof(IConnectionItemsFeature)
        || key == typeof(IConnectionLifetimeFeature) || key == typeof(IConnectionEndPointFeature) || key == typeof(IMemoryPoolFeature)
        || key == typeof(ISocketTakeover);

    private object? Find(Type key)
    {
        for (var i = 0; i < _otherCount; i++)
        {
            if (_others![i].Key == key)
            {
                return _others[i].Value;
            }
        }
        return null;
    }

    private void SetOther(Type key, object? value)
    {
        _revision++;
        for (var i = 0; i < _otherCount; i++)
        {
            if (_others![i].Key == key)
            {
                if (value is null)
                {
                    _others[i] = _others[--_otherCount];
                    _others[_otherCount] = default;
                }
                else
                {
                    _others[i] = new(key, value);
                }
                return;
            }
        }
        if (value is null)
        {
            return;
        }
        if (_others is null || _otherCount == _others.Length)
        {
            Array.Resize(ref _others, _others is null ? 6 : _others.Length * 2);
        }
        _others[_otherCount++] = new(key, value);
    }

    IEnumerator<KeyValuePair<Type, object>> IEnumerable<KeyValuePair<Type, object>>.GetEnumerator()
    {
        yield return new(typeof(IConnectionIdFeature), this);
        yield return new(typeof(IConnectionTransportFeature), this);
        yield return new(typeof(IConnectionItemsFeature), this);
        yield return new(typeof(IConnectionLifetimeFeature), this);
        yield return new(typeof(IConnectionEndPointFeature), this);
        yield return new(typeof(IMemoryPoolFeature), this);
        yield return new(typeof(ISocketTakeover), this);
        for (var i = 0; i < _otherCount; i++)
        {
            yield return _others![i];
        }
    }

    IEnumerator IEnumerable.GetEnumerator() => ((IEnumerable<KeyValuePair<Type, object>>)this).GetEnumerator();
}
