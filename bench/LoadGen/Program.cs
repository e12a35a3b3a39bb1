using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Security.Cryptography.X509Certificates;
using System.Net.Sockets;
using System.Text.Json;

namespace LoadGen;

/// <summary>
/// WebSocket load generator for bench/run.sh. Every scenario is bounded in time and count and prints one human
/// line and one JSON line (appended to --out when given). See bench/README.md.
/// </summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help")
        {
            Console.WriteLine(Usage);
            return args.Length == 0 ? 2 : 0;
        }
        var scenario = args[0];
        Options options;
        try
        {
            options = Options.Parse(args.AsSpan(1));
            if (scenario == "report")
            {
                return Report.Print(options);
            }
            var result = scenario switch
            {
                "echo" => await Scenarios.EchoAsync(options),
                "rate" => await Scenarios.RateAsync(options),
                "idle" => await Scenarios.IdleAsync(options),
                "tls-connect" => await Scenarios.TlsConnectAsync(options),
                "idle-h2" => await H2IdleScenario.RunAsync(options),
                "soak" => await SoakScenario.RunAsync(options),
                "distinct" => await DistinctScenario.RunAsync(options),
                "merge" => Merge.Run(options),
                _ => throw new ArgumentException($"unknown scenario '{scenario}'"),
            };
            Emit(options, scenario, result);
            return 0;
        }
        catch (ArgumentException ex)
        {
            Console.Error.WriteLine($"loadgen: {ex.Message}");
            Console.Error.WriteLine(Usage);
            return 2;
        }
        catch (InvalidOperationException ex)
        {
            // The target cannot run this scenario at all (idle-h2 against a server without RFC 8441).
            Console.Error.WriteLine($"loadgen: {ex.Message}");
            return 1;
        }
    }

    private const string Usage = """
        usage: LoadGen <scenario> [options]
          echo         --url ws://127.0.0.1:P/path --conns N --inflight K --size S --duration D [--warmup W]
          rate         --url ... --conns N --rate R (msg/s per connection) --size S --duration D [--warmup W]
          idle         --url ... --conns N --duration D (held idle) [--concurrency C] --pids P[,P...]
          tls-connect  --url wss://... --duration D [--concurrency C] [--size S] [--ca cert.pem] [--tls-resume 0|1]
          idle-h2      --url wss://... --conns N --streams-per-conn K --duration D [--concurrency C] [--ca cert.pem]
                       (WebSockets over HTTP/2, RFC 8441: N tunnels on N/K TLS connections; the server's
                       SETTINGS_MAX_CONCURRENT_STREAMS must be K)
          soak         --url ws://... [--wss-url wss://... --wss-share 0.5 --ca cert.pem] --conns N --rate R
                       --duration D [--size S --report-every 60 --drain 10 --echo-timeout 30 --backoff-min 1
                       --backoff-max 15 --ready-file F --end-file E --end-go-file G --md-out M] (bench/soak.sh:
                       tunnels that reconnect, every echo checked, every loss counted)
          distinct     --url ws://... --clients N [--concurrency 200 --rate 0 (clients/s; 0: no pacing) --messages 3 --size 32 --first-source 127.1.0.1
                       --mark-every 10000 --mark-file F --mark-go-file G --md-out M --max-seconds 1200]
                       (bench/distinct-clients.sh: N short clients, each from its own source address)
          report       --in results.jsonl [--baseline nginx]
          merge        --in a.jsonl,b.jsonl --hists a.hist,b.hist [--requested N --rate R --duration D --loadgens K]
                       [--set key=value,...] (one result from several rate runs at once: bench/seeds-scale.sh)
        rate, for several processes at once: --ready-file F --go-file G (write F when connected, start when G
                exists), --hist-out H (raw latency histogram for merge), --drain S (count every message stamped in
                the window whose echo arrives within S seconds after it), --open-seconds S (bound the connect phase)
        common: --pids P,P (target processes: RSS and CPU from /proc), --sources 127.0.0.2,127.0.0.3 (source
                addresses to spread connections over), --label NAME --target NAME --rep N --out FILE.jsonl,
                --connect-concurrency C (how many connects in flight while opening connections, default 500),
                --max-seconds T (hard stop for the whole run, default duration + 120)
        """;

    private static void Emit(Options options, string scenario, Dictionary<string, object> result)
    {
        var record = new Dictionary<string, object>
        {
            ["label"] = options.Get("label", scenario),
            ["scenario"] = scenario,
            ["target"] = options.Get("target", "?"),
            ["rep"] = options.GetInt("rep", 1),
            ["time"] = DateTime.UtcNow.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture),
        };
        foreach (var (key, value) in result)
        {
            record[key] = value;
        }
        var json = JsonSerializer.Serialize(record);
        var human = string.Join(' ', result.Select(kv => $"{kv.Key}={Format(kv.Value)}"));
        Console.WriteLine($"{record["label"]} target={record["target"]} rep={record["rep"]}: {human}");
        Console.WriteLine(json);
        if (options.Has("out"))
        {
            File.AppendAllText(options.Get("out", ""), json + "\n");
        }
    }

    private static string Format(object value) => value switch
    {
        double d => d.ToString("0.###", CultureInfo.InvariantCulture),
        _ => Convert.ToString(value, CultureInfo.InvariantCulture) ?? "",
    };
}

public sealed class Options
{
    private readonly Dictionary<string, string> _values = new();

    public static Options Parse(ReadOnlySpan<string> args)
    {
        var options = new Options();
        for (var i = 0; i < args.Length; i++)
        {
            if (!args[i].StartsWith("--", StringComparison.Ordinal) || i + 1 >= args.Length)
            {
                throw new ArgumentException($"expected '--name value', got '{args[i]}'");
            }
            options._values[args[i][2..]] = args[++i];
        }
        return options;
    }

    public bool Has(string name) => _values.ContainsKey(name);

    public string Get(string name, string fallback) => _values.GetValueOrDefault(name, fallback);

    public int GetInt(string name, int fallback) =>
        _values.TryGetValue(name, out var v) ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;

    public double GetDouble(string name, double fallback) =>
        _values.TryGetValue(name, out var v) ? double.Parse(v, CultureInfo.InvariantCulture) : fallback;

    public Target GetTarget(string urlOption = "url")
    {
        if (!_values.TryGetValue(urlOption, out var url))
        {
            throw new ArgumentException($"--{urlOption} is required");
        }
        var uri = new Uri(url);
        if (!IPAddress.TryParse(uri.Host, out var address) || !IPAddress.IsLoopback(address))
        {
            // Traffic goes to loopback only.
            throw new ArgumentException($"--url must name a loopback IP address (127.x.x.x or ::1), got '{uri.Host}'");
        }
        var sources = Get("sources", "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
            .Select(IPAddress.Parse).ToArray();
        if (sources.Any(s => !IPAddress.IsLoopback(s)))
        {
            throw new ArgumentException("--sources must be loopback addresses");
        }
        return new Target
        {
            Address = address,
            Port = uri.Port,
            Tls = uri.Scheme == "wss",
            Path = uri.PathAndQuery,
            Sources = sources,
            TrustedRoot = Has("ca") ? X509Certificate2.CreateFromPem(File.ReadAllText(Get("ca", ""))) : null,
            AllowTlsResume = Get("tls-resume", "0") == "1",
        };
    }

    public int[] GetPids() => Get("pids", "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
        .Select(p => int.Parse(p, CultureInfo.InvariantCulture)).ToArray();
}

/// <summary>CPU and memory of this process and of the target processes, from the runtime and /proc.</summary>
public readonly struct Sample
{
    public readonly long Timestamp;
    public readonly TimeSpan OwnCpu;
    public readonly double TargetCpuSeconds;

    private Sample(long timestamp, TimeSpan ownCpu, double targetCpu)
    {
        Timestamp = timestamp;
        OwnCpu = ownCpu;
        TargetCpuSeconds = targetCpu;
    }

    public static Sample Take(int[] pids) =>
        new(Stopwatch.GetTimestamp(), Process.GetCurrentProcess().TotalProcessorTime, TargetCpu(pids));

    /// <summary>This process's CPU over the interval, in % of one core.</summary>
    public static double OwnCpuPercent(Sample a, Sample b) =>
        Math.Round(100 * (b.OwnCpu - a.OwnCpu).TotalSeconds / Seconds(a, b), 1);

    public static double TargetCpuPercent(Sample a, Sample b) =>
        Math.Round(100 * (b.TargetCpuSeconds - a.TargetCpuSeconds) / Seconds(a, b), 1);

    public static double Seconds(Sample a, Sample b) => (b.Timestamp - a.Timestamp) / (double)Stopwatch.Frequency;

    /// <summary>utime + stime of the processes (all their threads), in seconds; USER_HZ is 100 on Linux.</summary>
    public static double TargetCpu(int[] pids)
    {
        double total = 0;
        foreach (var pid in pids)
        {
            try
            {
                var stat = File.ReadAllText($"/proc/{pid}/stat");
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                // After "pid (comm) ": field 3 is state (index 0); utime is field 14 (index 11), stime 15 (index 12).
                total += (long.Parse(fields[11], CultureInfo.InvariantCulture) + long.Parse(fields[12], CultureInfo.InvariantCulture)) / 100.0;
            }
            catch (IOException)
            {
            }
        }
        return total;
    }

    /// <summary>VmRSS of the processes, summed, in bytes.</summary>
    public static long Rss(int[] pids)
    {
        long total = 0;
        foreach (var pid in pids)
        {
            try
            {
                foreach (var line in File.ReadLines($"/proc/{pid}/status"))
                {
                    if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
                    {
                        total += long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
                    }
                }
            }
            catch (IOException)
            {
            }
        }
        return total;
    }
}

public static class Stats
{
    public static double Percentile(List<int> sorted, double p)
    {
        if (sorted.Count == 0)
        {
            return double.NaN;
        }
        var index = (int)Math.Ceiling(p / 100.0 * sorted.Count) - 1;
        return sorted[Math.Clamp(index, 0, sorted.Count - 1)];
    }

    /// <summary>p50/p99/max in milliseconds under the given prefix.</summary>
    public static void AddLatencies(Dictionary<string, object> result, string prefix, List<int> micros)
    {
        micros.Sort();
        result[$"{prefix}p50_ms"] = Ms(Percentile(micros, 50));
        result[$"{prefix}p99_ms"] = Ms(Percentile(micros, 99));
        result[$"{prefix}max_ms"] = Ms(micros.Count == 0 ? double.NaN : micros[^1]);
    }

    private static double Ms(double micros) => double.IsNaN(micros) ? -1 : Math.Round(micros / 1000.0, 3);
}
