using System.Globalization;
using System.Text.Json;

namespace LoadGen;

/// <summary>Reads the JSON lines of a run and prints one markdown table per scenario: medians, and ratios to the baseline.</summary>
public static class Report
{
    private static readonly string[] TargetOrder = ["direct", "nginx", "haproxy", "gateway"];

    // The columns shown per scenario kind; the first ones get a ratio to the baseline.
    private static readonly Dictionary<string, (string Key, string Title, bool Ratio)[]> Columns = new()
    {
        ["echo"] =
        [
            ("msgs_per_s", "msgs/s", true), ("p50_ms", "p50 ms", true), ("p99_ms", "p99 ms", true), ("max_ms", "max ms", false),
            ("target_cpu_pct", "proxy CPU %", false), ("lg_cpu_pct", "loadgen CPU %", false), ("errors", "errors", false),
        ],
        ["rate"] =
        [
            ("achieved_per_s", "msgs/s got", true), ("p50_ms", "p50 ms", true), ("p99_ms", "p99 ms", true), ("max_ms", "max ms", true),
            ("target_cpu_pct", "proxy CPU %", true), ("lg_cpu_pct", "loadgen CPU %", false), ("errors", "errors", false),
        ],
        ["idle"] =
        [
            ("connect_per_s", "connects/s", true), ("hs_p50_ms", "hs p50 ms", true), ("hs_p99_ms", "hs p99 ms", true),
            ("kb_per_conn", "KB/conn", true), ("hold_target_cpu_pct", "idle CPU %", false), ("echo_ok", "echo ok", false),
            ("pings_answered", "pings", false), ("connect_lg_cpu_pct", "loadgen CPU % (connect)", false), ("errors", "errors", false),
        ],
        ["idle-h2"] =
        [
            ("connect_per_s", "connects/s", true), ("hs_p50_ms", "hs p50 ms", true), ("hs_p99_ms", "hs p99 ms", true),
            ("kb_per_conn", "KB/tunnel", true), ("hold_target_cpu_pct", "idle CPU %", false), ("echo_ok", "echo ok", false),
            ("h2_conns", "h2 conns", false), ("connect_lg_cpu_pct", "loadgen CPU % (connect)", false), ("errors", "errors", false),
        ],
        // bench/seeds-scale.sh: one merged row per (level, target); processes and memory come from the script.
        ["merge"] =
        [
            ("processes", "procs", false), ("delivered_pct", "delivered %", true), ("p50_ms", "p50 ms", true),
            ("p99_ms", "p99 ms", true), ("max_ms", "max ms", false), ("target_cpu_pct", "proxy CPU %", true),
            ("lg_cpu_pct", "loadgen CPU %", false), ("echo_cpu_pct", "echo CPU %", false), ("kb_per_conn", "KB/conn", true), ("rss_mb", "RSS MB", false),
            ("conn_failures", "conn failures", false), ("sent_pct", "sent %", false), ("errors", "errors", false),
        ],
        ["tls-connect"] =
        [
            ("conns_per_s", "conns/s", true), ("hs_p50_ms", "hs p50 ms", true), ("hs_p99_ms", "hs p99 ms", true),
            ("target_cpu_ms_per_conn", "proxy CPU ms/conn", true), ("target_cpu_pct", "proxy CPU %", false),
            ("lg_cpu_pct", "loadgen CPU %", false), ("errors", "errors", false),
        ],
    };

    public static int Print(Options options)
    {
        var path = options.Get("in", "results.jsonl");
        var baseline = options.Get("baseline", "nginx");
        var records = File.ReadLines(path)
            .Where(line => line.TrimStart().StartsWith('{'))
            .Select(line => JsonDocument.Parse(line).RootElement.Clone())
            .ToList();
        foreach (var label in records.Select(r => r.GetProperty("label").GetString()!).Distinct())
        {
            var rows = records.Where(r => r.GetProperty("label").GetString() == label).ToList();
            var scenario = rows[0].GetProperty("scenario").GetString()!;
            var columns = Columns.GetValueOrDefault(scenario) ?? [];
            var targets = rows.Select(r => r.GetProperty("target").GetString()!).Distinct()
                .OrderBy(t => Array.IndexOf(TargetOrder, t) is var i and >= 0 ? i : 99).ToList();
            var describe = Describe(rows[0]);
            // A scenario the baseline cannot run (idle-h2: nginx has no RFC 8441) takes the first other proxy instead.
            var tableBaseline = targets.Contains(baseline) ? baseline : targets.FirstOrDefault(t => t != "direct") ?? baseline;
            if (tableBaseline != baseline && targets.Count > 1)
            {
                describe += $"; ratios to {tableBaseline}";
            }
            Console.WriteLine($"### {label} ({describe})");
            Console.WriteLine();
            Console.WriteLine("| target | reps | " + string.Join(" | ", columns.Select(c => c.Title)) + " |");
            Console.WriteLine("| --- | --- | " + string.Join(" | ", columns.Select(_ => "---")) + " |");
            var medians = targets.ToDictionary(t => t, t => columns.ToDictionary(c => c.Key,
                c => Median(rows.Where(r => r.GetProperty("target").GetString() == t).Select(r => Number(r, c.Key)))));
            foreach (var t in targets)
            {
                var reps = rows.Count(r => r.GetProperty("target").GetString() == t);
                var cells = columns.Select(c =>
                {
                    var value = medians[t][c.Key];
                    var cell = Show(value);
                    if (c.Ratio && t != tableBaseline && medians.TryGetValue(tableBaseline, out var b) && b[c.Key] is > 0 && !double.IsNaN(value))
                    {
                        cell += $" ({(value / b[c.Key]).ToString("0.00", CultureInfo.InvariantCulture)}×)";
                    }
                    return cell;
                });
                Console.WriteLine($"| {t} | {reps} | " + string.Join(" | ", cells) + " |");
            }
            Console.WriteLine();
        }
        return 0;
    }

    private static string Describe(JsonElement r)
    {
        var parts = new List<string>();
        foreach (var key in new[] { "requested", "loadgens", "conns", "inflight", "rate_per_conn", "size", "duration_s", "hold_s", "concurrency", "streams_per_conn" })
        {
            // A merged row (seeds-scale) names the clients requested; how many connected differs per target.
            if (key == "conns" && r.TryGetProperty("requested", out _))
            {
                continue;
            }
            if (r.TryGetProperty(key, out var v))
            {
                parts.Add($"{key}={v}");
            }
        }
        return string.Join(", ", parts);
    }

    private static double Number(JsonElement r, string key) =>
        r.TryGetProperty(key, out var v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : double.NaN;

    private static double Median(IEnumerable<double> values)
    {
        var sorted = values.Where(v => !double.IsNaN(v)).Order().ToList();
        if (sorted.Count == 0)
        {
            return double.NaN;
        }
        return sorted.Count % 2 == 1 ? sorted[sorted.Count / 2] : (sorted[sorted.Count / 2 - 1] + sorted[sorted.Count / 2]) / 2;
    }

    private static string Show(double value) => double.IsNaN(value) ? "n/a"
        : Math.Abs(value) >= 100 ? value.ToString("0", CultureInfo.InvariantCulture)
        : value.ToString("0.##", CultureInfo.InvariantCulture);
}
