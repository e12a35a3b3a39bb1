using System.Collections.Concurrent;
using Gateway.Handshake;

namespace Gateway.Relay;

/// <summary>Which tunnels share a bucket: one client's, one user's or one route's, under one policy.</summary>
internal readonly record struct SharedBucketKey(string Policy, SharedBucketScope Scope, ClientKey Client, string? Name);

internal enum SharedBucketScope : byte
{
    Client,
    User,
    Route,
}

/// <summary>The message and byte buckets that several tunnels share. Taken under its lock: a few instructions.</summary>
internal sealed class SharedBucket
{
    public readonly Lock Gate = new();
    public TokenBucket Messages;
    public TokenBucket Bytes;

    // The rates last used, so the expiry knows when the buckets are full again.
    public BucketRate MessageRate;
    public BucketRate ByteRate;
    public long LastUsed;
    public int Tunnels;
    public bool Removed;
}

/// <summary>
/// The shared buckets of the per-client, per-user and per-route limits. A tunnel takes its entries when it opens and
/// gives them back when it ends; the keepalive sweep calls <see cref="Expire"/>, which drops an entry no tunnel holds once
/// its buckets are full again (a fresh entry would be the same), or after <see cref="MaxIdle"/> at the latest. So the
/// entries are those of open tunnels plus those of clients gone for less than that, however many distinct clients come:
/// memory follows the connections, not the number of addresses ever seen.
/// </summary>
internal sealed class SharedRateBuckets
{
    /// <summary>An entry without tunnels is kept at most this long, even when a slow refill would want it longer.</summary>
    public static readonly TimeSpan MaxIdle = TimeSpan.FromSeconds(60);

    /// <summary>How often <see cref="Expire"/> walks the entries.</summary>
    private static readonly TimeSpan ExpiryPeriod = TimeSpan.FromSeconds(1);

    private readonly ConcurrentDictionary<SharedBucketKey, SharedBucket> _entries = new();
    private readonly TimeProvider _time;
    private long _nextExpiry;

    public SharedRateBuckets(TimeProvider time) => _time = time;

    /// <summary>Entries held now (for tests and the bound).</summary>
    public int Count => _entries.Count;

    /// <summary>The entry of <paramref name="key"/>, held for one more tunnel until <see cref="Release"/>.</summary>
    public SharedBucket Acquire(in SharedBucketKey key)
    {
        while (true)
        {
            var entry = _entries.GetOrAdd(key, static _ => new SharedBucket());
            lock (entry.Gate)
            {
                if (!entry.Removed)
                {
                    entry.Tunnels++;
                    return entry;
                }
            }
            // Expired between the lookup and the lock: a new one takes its place.
        }
    }

    public void Release(SharedBucket entry)
    {
        lock (entry.Gate)
        {
            entry.Tunnels--;
            entry.LastUsed = _time.GetTimestamp();
        }
    }

    /// <summary>Drops the entries no tunnel holds whose buckets are full again (or idle for <see cref="MaxIdle"/>).</summary>
    public void Expire(bool force = false)
    {
        var now = _time.GetTimestamp();
        if (!force && now < Volatile.Read(ref _nextExpiry))
        {
            return;
        }
        var frequency = _time.TimestampFrequency;
        Volatile.Write(ref _nextExpiry, now + (long)(ExpiryPeriod.TotalSeconds * frequency));
        var maxIdle = (long)(MaxIdle.TotalSeconds * frequency);
        foreach (var (key, entry) in _entries)
        {
            lock (entry.Gate)
            {
                if (entry.Tunnels != 0)
                {
                    continue;
                }
                if (now - entry.LastUsed < maxIdle
                    && !(entry.Messages.IsFull(entry.MessageRate, now, frequency) && entry.Bytes.IsFull(entry.ByteRate, now, frequency)))
                {
                    continue;
                }
                entry.Removed = true;
                _entries.TryRemove(new KeyValuePair<SharedBucketKey, SharedBucket>(key, entry));
            }
        }
    }
}
