using System.Buffers;
using System.Buffers.Binary;
using Yarp.ReverseProxy.Model;

namespace Gateway.LoadBalancing;

/// <summary>
/// A consistent-hash ring (Karger et al., 1997) over all of a cluster's destinations, with
/// <see cref="PointsPerDestination"/> points (virtual nodes) each, at positions that depend only on the destination's
/// name: every replica builds the same ring, and a destination that joins or leaves takes or gives up only the keys
/// next to its own points, about 1/N of them. Immutable; built once per set of destinations.
/// </summary>
/// <remarks>
/// Destinations that are not available for a request (unhealthy, or already tried by the connect retry) are
/// skipped on the walk rather than taken out of the ring, which picks exactly what a ring of the available ones
/// would: so health changes and retries need no new ring.
/// </remarks>
internal sealed class HashRing
{
    /// <summary>
    /// 160 points each (ketama's choice): the busiest of 5 destinations holds about 1.08 times an even share of the
    /// keys on average over destination names, 1.15 at worst (1.14 for the tests' names); 512 points would make
    /// that 1.05, at three times the memory (12 bytes a point). The load bound evens out the rest.
    /// </summary>
    public const int PointsPerDestination = 160;

    /// <summary>Per-request load table on the stack up to this many destinations, rented beyond.</summary>
    private const int StackLimit = 128;
    private const int Unavailable = -1;
    private const int Full = -2;

    private readonly ulong[] _points;
    private readonly int[] _owners;
    private readonly DestinationState[] _destinations;
    private readonly Dictionary<DestinationState, int> _indexes;

    private HashRing(IReadOnlyList<DestinationState> source, ulong[] points, int[] owners, DestinationState[] destinations, Dictionary<DestinationState, int> indexes)
    {
        Source = source;
        _points = points;
        _owners = owners;
        _destinations = destinations;
        _indexes = indexes;
    }

    /// <summary>The list the ring was built from (YARP keeps one instance until the cluster's destinations change).</summary>
    public IReadOnlyList<DestinationState> Source { get; }

    public int DestinationCount => _destinations.Length;

    public int PointCount => _points.Length;

    public static HashRing Build(IReadOnlyList<DestinationState> source)
    {
        // Sorted by name, so that owners, and so ties between equal points, do not depend on the configuration's order.
        var destinations = source.Distinct().OrderBy(d => d.DestinationId, StringComparer.Ordinal).ToArray();
        var indexes = new Dictionary<DestinationState, int>(destinations.Length, ReferenceEqualityComparer.Instance);
        var ring = new (ulong Point, int Owner)[destinations.Length * PointsPerDestination];
        Span<byte> replica = stackalloc byte[sizeof(int)];
        for (var owner = 0; owner < destinations.Length; owner++)
        {
            indexes[destinations[owner]] = owner;
            for (var i = 0; i < PointsPerDestination; i++)
            {
                // name, a zero byte (never part of a name), the point's number: distinct inputs for distinct points.
                var hash = StableHash.Create();
                hash.AppendUtf8(destinations[owner].DestinationId);
                hash.Append(0);
                BinaryPrimitives.WriteInt32LittleEndian(replica, i);
                hash.Append(replica);
                ring[owner * PointsPerDestination + i] = (hash.Finish(), owner);
            }
        }
        Array.Sort(ring);
        return new HashRing(source, ring.Select(p => p.Point).ToArray(), ring.Select(p => p.Owner).ToArray(), destinations, indexes);
    }

    /// <summary>The same ring for a new list of the same destinations.</summary>
    public HashRing WithSource(IReadOnlyList<DestinationState> source) => new(source, _points, _owners, _destinations, _indexes);

    public bool HasSameMembers(IReadOnlyList<DestinationState> destinations)
    {
        if (destinations.Count != _destinations.Length)
        {
            return false;
        }
        for (var i = 0; i < destinations.Count; i++)
        {
            if (!_indexes.ContainsKey(destinations[i]))
            {
                return false;
            }
        }
        return true;
    }

    /// <summary>
    /// Walks the ring from the key's position to the first available destination under the load bound, as in
    /// "Consistent Hashing with Bounded Loads" (Mirrokni, Thorup, Zadimoghaddam, 2016) and HAProxy's
    /// <c>hash-balance-factor</c>: a destination is under it while its in-flight requests are fewer than
    /// ⌈factor × (all in-flight requests + this one) / available destinations⌉. Some available destination always is
    /// (for factor ≥ 1 they cannot all be at or above the mean). Null when no available destination is in the ring.
    /// </summary>
    public DestinationState? Pick(ulong hash, IReadOnlyList<DestinationState> available, double balanceFactor)
    {
        var count = _destinations.Length;
        if (count == 0)
        {
            return null;
        }
        int[]? rented = null;
        Span<int> loads = count <= StackLimit ? stackalloc int[count] : (rented = ArrayPool<int>.Shared.Rent(count)).AsSpan(0, count);
        try
        {
            // Each load read once, so the walk judges one consistent picture.
            loads.Fill(Unavailable);
            long total = 0;
            var candidates = 0;
            for (var i = 0; i < available.Count; i++)
            {
                var destination = available[i];
                if (_indexes.TryGetValue(destination, out var index) && loads[index] == Unavailable)
                {
                    var load = DestinationLoad.Of(destination);
                    loads[index] = load;
                    total += load;
                    candidates++;
                }
            }
            if (candidates == 0)
            {
                return null;
            }

            var capacity = Capacity(total, candidates, balanceFactor);
            var position = Array.BinarySearch(_points, hash);
            position = position >= 0 ? position : ~position;
            var full = 0;
            for (var step = 0; step < _points.Length; step++, position++)
            {
                if (position == _points.Length)
                {
                    position = 0;
                }
                var owner = _owners[position];
                var load = loads[owner];
                if (load < 0)
                {
                    continue; // not available, or already found full
                }
                if (load < capacity)
                {
                    return _destinations[owner];
                }
                loads[owner] = Full;
                if (++full == candidates)
                {
                    break;
                }
            }
            return null;
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<int>.Shared.Return(rented);
            }
        }
    }

    /// <summary>⌈factor × (total + 1) / candidates⌉, at least 1; no bound for factor 0.</summary>
    internal static long Capacity(long total, int candidates, double balanceFactor)
    {
        if (balanceFactor <= 0)
        {
            return long.MaxValue;
        }
        // The epsilon keeps an exact product that binary floating point overshoots (1.1 × 10 / 11) from rounding up.
        var bound = Math.Ceiling(balanceFactor * (total + 1) / candidates - 1e-9);
        return Math.Max(1, (long)bound);
    }
}
