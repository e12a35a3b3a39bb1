using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using Yarp.ReverseProxy.Model;

namespace Gateway.LoadBalancing;

/// <summary>
/// How many requests with each key are in flight on each destination, on this gateway process (a tunnel is one request
/// for its whole life). With the load bound on, a key that has live tunnels on an available destination goes there,
/// whatever the bound says: the bound only places keys that have none, so it never splits a room that is open here.
/// </summary>
/// <remarks>
/// An entry exists only while its count is above zero, so memory is bounded by the keyed requests in flight (and so by
/// the gateway's connection limits), about 40 bytes each. One lock: it is taken once when a keyed request is placed and
/// once when it ends, far less often than frames are relayed.
/// </remarks>
internal sealed class KeyTunnels
{
    private readonly Dictionary<(ulong Key, DestinationState Destination), int> _counts = [];
    private readonly Lock _lock = new();

    /// <summary>Keys and destinations with live requests (for tests and diagnostics).</summary>
    public int Entries
    {
        get
        {
            lock (_lock)
            {
                return _counts.Count;
            }
        }
    }

    /// <summary>Of the available destinations, the one with the most live requests for the key; null if none has any.</summary>
    public DestinationState? Holder(ulong key, IReadOnlyList<DestinationState> available)
    {
        lock (_lock)
        {
            if (_counts.Count == 0)
            {
                return null;
            }
            DestinationState? holder = null;
            var most = 0;
            for (var i = 0; i < available.Count; i++)
            {
                if (_counts.TryGetValue((key, available[i]), out var count) && count > most)
                {
                    holder = available[i];
                    most = count;
                }
            }
            return holder;
        }
    }

    public void Add(ulong key, DestinationState destination)
    {
        lock (_lock)
        {
            CollectionsMarshal.GetValueRefOrAddDefault(_counts, (key, destination), out _)++;
        }
    }

    public void Remove(ulong key, DestinationState destination)
    {
        lock (_lock)
        {
            ref var count = ref CollectionsMarshal.GetValueRefOrNullRef(_counts, (key, destination));
            if (!Unsafe.IsNullRef(ref count) && --count <= 0)
            {
                _counts.Remove((key, destination));
            }
        }
    }
}

/// <summary>
/// A request's place in <see cref="KeyTunnels"/>: taken when the policy picks its destination, moved when the connect
/// retry picks again, given up when the request ends. The end is ASP.NET Core's
/// <see cref="HttpResponse.RegisterForDispose"/>, which runs once the request is over: for a WebSocket on Kestrel's
/// HTTP/1.1 and HTTP/2, once its tunnel has ended. On the lean HTTP/1.1 path the request ends at the 101 and the tunnel
/// goes on: the tunnel forwarder then holds the lease too (<see cref="OutliveRequest"/>) and disposes it at the tunnel's end.
/// </summary>
internal sealed class KeyLease : IDisposable
{
    private readonly KeyTunnels _tunnels;
    private readonly ulong _key;
    private readonly Lock _lock = new();
    private DestinationState? _destination;
    private int _holders = 1;

    private KeyLease(KeyTunnels tunnels, ulong key, DestinationState destination)
    {
        _tunnels = tunnels;
        _key = key;
        _destination = destination;
    }

    /// <summary>Counts the request on <paramref name="destination"/>, or moves its count there on a second pick.</summary>
    public static void Hold(HttpContext context, KeyTunnels tunnels, ulong key, DestinationState destination)
    {
        if (context.Features.Get<KeyLease>() is { } lease)
        {
            if (ReferenceEquals(lease._tunnels, tunnels) && lease._key == key && lease.MoveTo(destination))
            {
                return;
            }
            lease.Dispose();
        }
        tunnels.Add(key, destination);
        lease = new KeyLease(tunnels, key, destination);
        context.Features.Set(lease);
        context.Response.RegisterForDispose(lease);
    }

    private bool MoveTo(DestinationState destination)
    {
        lock (_lock)
        {
            if (_destination is not { } current)
            {
                return false; // already ended
            }
            if (!ReferenceEquals(current, destination))
            {
                // Add before remove, so the key's entry does not disappear in between.
                _tunnels.Add(_key, destination);
                _tunnels.Remove(_key, current);
                _destination = destination;
            }
            return true;
        }
    }

    /// <summary>The tunnel outlives its request: the count stays until the tunnel's own <see cref="Dispose"/> too.</summary>
    public void OutliveRequest() => Interlocked.Increment(ref _holders);

    /// <summary>One holder is done; the last gives the count up.</summary>
    public void Dispose()
    {
        if (Interlocked.Decrement(ref _holders) > 0)
        {
            return;
        }
        lock (_lock)
        {
            if (_destination is { } current)
            {
                _destination = null;
                _tunnels.Remove(_key, current);
            }
        }
    }
}
