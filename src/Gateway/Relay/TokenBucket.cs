namespace Gateway.Relay;

/// <summary>A bucket's numbers: refill per second and capacity. Immutable; a reload makes new ones.</summary>
internal readonly record struct BucketRate(double PerSecond, double Burst)
{
    public bool IsOn => PerSecond > 0;

    /// <summary>From the options: no rate is no limit; no burst is one second's worth (at least 1).</summary>
    public static BucketRate From(Configuration.RateOptions options) =>
        new(options.PerSecond, options.Burst > 0 ? options.Burst : Math.Max(1, options.PerSecond));
}

/// <summary>
/// A token bucket for one rate (messages or bytes), refilled lazily from the clock when it is asked. Written by hand
/// instead of System.Threading.RateLimiting's TokenBucketRateLimiter: that one hands out a lease object per acquire and
/// refills on a timer per limiter, and the relay asks once per data frame, where nothing may be allocated; this is two
/// fields in the tunnel (or in a shared entry) and a clock read. The rate is passed on each call, not stored, so a
/// reloaded policy's numbers apply to buckets already in use.
/// </summary>
/// <remarks>
/// A frame costs its whole payload at once, and may take the bucket below zero: a message larger than the burst would
/// otherwise never pass. It passes when the bucket holds what it costs, or a full burst, and the debt it leaves is paid
/// before anything else passes, so the average rate holds.
/// </remarks>
internal struct TokenBucket
{
    private double _tokens;
    private long _stamp; // TimeProvider timestamp of the last refill; 0 before first use (then the bucket is full)

    /// <summary>Takes <paramref name="cost"/> if the bucket allows it; otherwise says how long until it would.</summary>
    public bool TryTake(double cost, BucketRate rate, long now, long frequency, out double waitSeconds)
    {
        Refill(rate, now, frequency);
        var needed = Math.Min(cost, rate.Burst);
        // A hair of tolerance: a refill computed from the clock may land a rounding error short of a whole token.
        if (_tokens >= needed - 1e-9)
        {
            _tokens -= cost;
            waitSeconds = 0;
            return true;
        }
        waitSeconds = (needed - _tokens) / rate.PerSecond;
        return false;
    }

    /// <summary>Takes <paramref name="cost"/> whatever the bucket holds (the rest of a message already let through).</summary>
    public void Charge(double cost, BucketRate rate, long now, long frequency)
    {
        Refill(rate, now, frequency);
        _tokens -= cost;
    }

    /// <summary>Gives back what <see cref="TryTake"/> took (another bucket of the same frame refused).</summary>
    public void Refund(double cost, BucketRate rate) => _tokens = Math.Min(rate.Burst, _tokens + cost);

    /// <summary>Whether the bucket is full as of <paramref name="now"/>: forgetting it then loses nothing.</summary>
    public readonly bool IsFull(BucketRate rate, long now, long frequency) =>
        _stamp == 0 || !rate.IsOn || _tokens + (now - _stamp) * rate.PerSecond / frequency >= rate.Burst;

    private void Refill(BucketRate rate, long now, long frequency)
    {
        if (_stamp == 0)
        {
            _tokens = rate.Burst;
        }
        else if (now > _stamp)
        {
            _tokens = Math.Min(rate.Burst, _tokens + (now - _stamp) * rate.PerSecond / frequency);
        }
        else
        {
            // A reload may have lowered the burst: never hold more than it.
            _tokens = Math.Min(rate.Burst, _tokens);
        }
        _stamp = now;
    }
}
