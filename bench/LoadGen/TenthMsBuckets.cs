namespace LoadGen;

/// <summary>Latency counted in buckets of 0.1 ms (the soak's and the distinct clients' histograms).</summary>
internal static class TenthMsBuckets
{
    /// <summary>The <paramref name="p"/>-th percentile in milliseconds, -1 when nothing was counted.</summary>
    public static double PercentileMs(long[] buckets, double p)
    {
        var total = buckets.Sum();
        if (total == 0)
        {
            return -1;
        }
        var rank = Math.Max(1, (long)Math.Ceiling(p / 100 * total));
        long seen = 0;
        for (var i = 0; i < buckets.Length; i++)
        {
            seen += buckets[i];
            if (seen >= rank)
            {
                return i / 10.0;
            }
        }
        return (buckets.Length - 1) / 10.0;
    }
}
