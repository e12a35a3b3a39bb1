using System.Globalization;
using System.Text.Json;

namespace LoadGen;

/// <summary>
/// `merge`: one result from the `rate` runs of several LoadGen processes that loaded the same target at the same time
/// (bench/seeds-scale.sh). Counts add up; delivered % = echoes received / (requested connections × rate × duration),
/// so connections that never opened count as undelivered; p50/p99/max come from the sum of the processes' raw
/// histograms (--hist-out), not from their own percentiles; the target's CPU is the mean of what each process measured
/// over its (same) window; the load generators' CPU is their sum.
/// </summary>
public static class Merge
{
    public static Dictionary<string, object> Run(Options o)
    {
        var records = Split(o.Get("in", ""))
            .SelectMany(File.ReadLines)
            .Where(line => line.TrimStart().StartsWith('{'))
            .Select(line => JsonDocument.Parse(line).RootElement.Clone())
            .ToList();
        var histogram = new SortedDictionary<long, long>();
        foreach (var path in Split(o.Get("hists", "")).Where(File.Exists))
        {
            LatencyHistogram.AddFile(histogram, path);
        }
        // Processes that wrote nothing (crashed, killed at the bound) still had their share of the clients.
        var requested = o.GetInt("requested", (int)Sum(records, "requested"));
        var rate = o.GetDouble("rate", records.Count > 0 ? Number(records[0], "rate_per_conn") : 1);
        var duration = o.GetDouble("duration", records.Count > 0 ? Number(records[0], "duration_s") : 0);
        var expected = requested * rate * duration;
        var received = Sum(records, "received");
        var sent = Sum(records, "sent");

        var result = new Dictionary<string, object>
        {
            ["loadgens"] = o.GetInt("loadgens", records.Count),
            ["loadgens_reported"] = records.Count,
            ["requested"] = requested,
            ["conns"] = (long)Sum(records, "conns"),
            ["conn_failures"] = requested - (long)Sum(records, "conns"),
            ["rate_per_conn"] = rate,
            ["duration_s"] = duration,
            ["expected"] = (long)expected,
            ["sent"] = (long)sent,
            ["received"] = (long)received,
            ["sent_pct"] = expected > 0 ? Math.Round(100 * sent / expected, 2) : -1,
            ["delivered_pct"] = expected > 0 ? Math.Round(100 * received / expected, 2) : -1,
            ["p50_ms"] = LatencyHistogram.PercentileMs(histogram, 50),
            ["p99_ms"] = LatencyHistogram.PercentileMs(histogram, 99),
            ["max_ms"] = histogram.Count > 0 ? Math.Round(histogram.Keys.Last() / 1000.0, 3) : -1,
            ["p99_max_of_parts_ms"] = records.Count > 0 ? records.Max(r => Number(r, "p99_ms")) : -1,
            ["target_cpu_pct"] = records.Count > 0 ? Math.Round(records.Average(r => Number(r, "target_cpu_pct")), 1) : -1,
            ["lg_cpu_pct"] = Math.Round(Sum(records, "lg_cpu_pct"), 1),
            ["errors"] = (long)Sum(records, "errors"),
        };
        if (records.Select(r => r.TryGetProperty("first_error", out var e) ? e.GetString() : null).FirstOrDefault(e => e is not null) is { } error)
        {
            result["first_error"] = error;
        }
        // --set key=value,...: figures the script measured itself (processes, RSS), numbers where they parse.
        foreach (var pair in Split(o.Get("set", "")))
        {
            var eq = pair.IndexOf('=');
            if (eq > 0)
            {
                var value = pair[(eq + 1)..];
                result[pair[..eq]] = double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out var d) ? d : value;
            }
        }
        return result;
    }

    private static string[] Split(string list) =>
        list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private static double Sum(List<JsonElement> records, string key) => records.Sum(r => Number(r, key) is var v && double.IsNaN(v) ? 0 : v);

    private static double Number(JsonElement r, string key) =>
        r.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : double.NaN;
}
