using System.Globalization;

namespace HeapStat;

/// <summary>The command line: <c>--pid N [--top 40] [--min-count 1] [--per TYPE_SUBSTRING] [--timeout 60] [--alloc S [--stacks TYPE_SUBSTRING]]</c>.</summary>
internal sealed record Options(int Pid, int Top, long MinCount, string? Per, TimeSpan Timeout, TimeSpan? Alloc, string? AllocStacks, int Frames)
{
    public const string Usage =
        "usage: HeapStat --pid N [--top 40] [--min-count 1] [--per TYPE_SUBSTRING] [--timeout 60] [--alloc S [--stacks TYPE_SUBSTRING [--frames 12]]]\n" +
        "  Forces a full blocking GC in process N and prints its live managed objects by type, largest total first.\n" +
        "  --top N          rows to print (default 40)\n" +
        "  --min-count N    hide types with fewer than N objects (default 1)\n" +
        "  --per SUBSTRING  divide every row by the object count of the type whose name contains SUBSTRING\n" +
        "                   (an exact or simple-name match wins), e.g. --per SocketConnection\n" +
        "  --timeout S      give up waiting for the heap walk after S seconds (default 60)\n" +
        "  --alloc S        instead of the heap walk: what the process allocates over S seconds, by type (sampled)\n" +
        "  --stacks SUBSTR  with --alloc: where the sampled allocations of types containing SUBSTR come from, by stack\n" +
        "                   (run the target with DOTNET_ReadyToRun=0 so framework frames have names)\n" +
        "  --frames N       with --stacks: frames per stack (default 12); the type's name comes first";

    /// <summary>Parses <paramref name="args"/>; returns null with <paramref name="error"/> set (empty for --help).</summary>
    public static Options? Parse(string[] args, out string error)
    {
        int? pid = null;
        int top = 40;
        long minCount = 1;
        string? per = null;
        int timeoutSeconds = 60;
        int? allocSeconds = null;
        string? stacks = null;
        int frames = 12;
        error = "";

        for (int i = 0; i < args.Length; i++)
        {
            string name = args[i];
            string? value = null;
            int eq = name.IndexOf('=');
            if (name.StartsWith("--", StringComparison.Ordinal) && eq > 0)
            {
                value = name[(eq + 1)..];
                name = name[..eq];
            }

            if (name is "-h" or "--help")
            {
                return null;
            }

            if (value is null)
            {
                if (i + 1 >= args.Length)
                {
                    error = $"{name} needs a value";
                    return null;
                }
                value = args[++i];
            }

            switch (name)
            {
                case "--pid" when TryPositive(value, out int p):
                    pid = p;
                    break;
                case "--top" when TryPositive(value, out int t):
                    top = t;
                    break;
                case "--min-count" when long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out long m):
                    minCount = m;
                    break;
                case "--per" when value.Length > 0:
                    per = value;
                    break;
                case "--timeout" when TryPositive(value, out int s):
                    timeoutSeconds = s;
                    break;
                case "--alloc" when TryPositive(value, out int a):
                    allocSeconds = a;
                    break;
                case "--frames" when TryPositive(value, out int f):
                    frames = f;
                    break;
                case "--stacks" when value.Length > 0:
                    stacks = value;
                    break;
                case "--pid" or "--top" or "--min-count" or "--per" or "--timeout" or "--alloc" or "--stacks" or "--frames":
                    error = $"bad value for {name}: '{value}'";
                    return null;
                default:
                    error = $"unknown option '{name}'";
                    return null;
            }
        }

        if (pid is null)
        {
            error = "--pid is required";
            return null;
        }
        if (stacks is not null && allocSeconds is null)
        {
            error = "--stacks needs --alloc S";
            return null;
        }
        return new Options(pid.Value, top, minCount, per, TimeSpan.FromSeconds(timeoutSeconds),
            allocSeconds is { } alloc ? TimeSpan.FromSeconds(alloc) : null, stacks, frames);
    }

    private static bool TryPositive(string s, out int value) =>
        int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out value) && value > 0;
}
