using System.Globalization;

namespace LoadGen;

/// <summary>
/// A raw latency histogram that several LoadGen processes write and `merge` adds up (bench/seeds-scale.sh): exact
/// microseconds up to 2,048 µs, above that buckets keeping the top 11 significant bits (under 0.1 % error), so
/// percentiles of the merged histogram match those of the merged samples to that precision. One line per
/// non-empty bucket: "lower_bound_us count".
/// </summary>
public static class LatencyHistogram
{
    public static long Bucket(int micros)
    {
        if (micros < 2048)
        {
            return Math.Max(0, micros);
        }
        var shift = 31 - int.LeadingZeroCount(micros) - 10;
        return ((long)micros >> shift) << shift;
    }

    public static SortedDictionary<long, long> From(List<int> micros)
    {
        var counts = new SortedDictionary<long, long>();
        foreach (var m in micros)
        {
            var b = Bucket(m);
            counts[b] = counts.GetValueOrDefault(b) + 1;
        }
        return counts;
    }

    public static void Write(string path, SortedDictionary<long, long> counts) =>
        File.WriteAllLines(path, counts.Select(kv => $"{kv.Key} {kv.Value}"));

    public static void AddFile(SortedDictionary<long, long> into, string path)
    {
        foreach (var line in File.ReadLines(path))
        {
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length != 2)
            {
                continue;
            }
            var b = long.Parse(parts[0], CultureInfo.InvariantCulture);
            into[b] = into.GetValueOrDefault(b) + long.Parse(parts[1], CultureInfo.InvariantCulture);
        }
    }

    /// <summary>The same rank rule as Stats.Percentile (ceil(p/100 × n), 1-based), in milliseconds; -1 when empty.</summary>
    public static double PercentileMs(SortedDictionary<long, long> counts, double p)
    {
        var total = counts.Values.Sum();
        if (total == 0)
        {
            return -1;
        }
        var rank = Math.Clamp((long)Math.Ceiling(p / 100.0 * total), 1, total);
        long seen = 0;
        foreach (var (bucket, count) in counts)
        {
            seen += count;
            if (seen >= rank)
            {
                return Math.Round(bucket / 1000.0, 3);
            }
        }
        return Math.Round(counts.Keys.Last() / 1000.0, 3);
    }
}
