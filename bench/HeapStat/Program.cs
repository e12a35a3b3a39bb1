using System.Globalization;
using System.Text;
using HeapStat;
using Microsoft.Diagnostics.NETCore.Client;

// A "dumpheap -stat"-like histogram of a live .NET process: see HeapSnapshot and bench/README.md.
CultureInfo.CurrentCulture = CultureInfo.InvariantCulture;

Options? options = Options.Parse(args, out string error);
if (options is null)
{
    if (error.Length > 0)
    {
        Console.Error.WriteLine($"HeapStat: {error}");
    }
    Console.Error.WriteLine(Options.Usage);
    return error.Length > 0 ? 2 : 0;
}

if (options is { Alloc: { } stacksFor, AllocStacks: { } stacksOf })
{
    try
    {
        Console.Write(AllocationStacks.Take(options.Pid, stacksFor, stacksOf, options.Frames, top: options.Top));
        return 0;
    }
    catch (Exception e) when (e is ServerNotAvailableException or UnsupportedCommandException or IOException or UnauthorizedAccessException)
    {
        Console.Error.WriteLine($"HeapStat: cannot trace process {options.Pid}: {e.GetType().Name}: {e.Message}");
        return 1;
    }
}

if (options.Alloc is { } allocFor)
{
    AllocationSample sample;
    try
    {
        sample = AllocationSample.Take(options.Pid, allocFor);
    }
    catch (Exception e) when (e is ServerNotAvailableException or UnsupportedCommandException or IOException or UnauthorizedAccessException)
    {
        Console.Error.WriteLine($"HeapStat: cannot trace process {options.Pid}: {e.GetType().Name}: {e.Message}");
        return 1;
    }
    var allocOutput = new StringBuilder();
    allocOutput.AppendLine($"HeapStat: pid {options.Pid}{Describe(options.Pid)}");
    allocOutput.AppendLine($"Allocations over {sample.Elapsed.TotalSeconds:0.0} s: {sample.Ticks:N0} ticks, {sample.Bytes:N0} bytes sampled"
        + (sample.EventsLost > 0 ? $", {sample.EventsLost:N0} events LOST" : ""));
    allocOutput.AppendLine("   Ticks        Bytes  Share  Type");
    foreach (var (name, row) in sample.ByType.OrderByDescending(kv => kv.Value.Bytes).Take(options.Top))
    {
        allocOutput.AppendLine($"{row.Ticks,8:N0} {row.Bytes,12:N0} {100.0 * row.Bytes / Math.Max(1, sample.Bytes),5:0.0}%  {name}");
    }
    Console.Write(allocOutput.ToString());
    return sample.Ticks > 0 ? 0 : 1;
}

HeapSnapshot snapshot;
try
{
    snapshot = HeapSnapshot.Take(options.Pid, options.Timeout, Console.Error);
}
catch (Exception e) when (e is ServerNotAvailableException or UnsupportedCommandException or IOException or UnauthorizedAccessException)
{
    // The usual causes: no such process, not .NET, DOTNET_EnableDiagnostics=0, another user, or a different
    // TMPDIR (the diagnostic socket is /tmp/dotnet-diagnostic-PID-*-socket under the target's TMPDIR).
    Console.Error.WriteLine($"HeapStat: cannot trace process {options.Pid}: {e.GetType().Name}: {e.Message}");
    return 1;
}

if (snapshot.Objects == 0)
{
    Console.Error.WriteLine($"HeapStat: process {options.Pid} reported no heap objects (gen2 GC seen: {snapshot.GcNumber >= 0})");
    return 1;
}

// Several runtime type ids can share a name (one per load context, or a type seen before its name event);
// a histogram by name is what one reads.
var byName = new Dictionary<string, TypeStat>(StringComparer.Ordinal);
foreach ((ulong typeId, TypeStat stat) in snapshot.ByTypeId)
{
    string name = snapshot.TypeName(typeId);
    if (!byName.TryGetValue(name, out TypeStat? total))
    {
        total = new TypeStat();
        byName.Add(name, total);
    }
    total.Count += stat.Count;
    total.Bytes += stat.Bytes;
    foreach ((ulong size, long count) in stat.Sizes)
    {
        total.Sizes[size] = total.Sizes.GetValueOrDefault(size) + count;
    }
}
List<(string Name, TypeStat Stat)> rows = byName
    .Select(kv => (kv.Key, kv.Value))
    .OrderByDescending(r => r.Value.Bytes)
    .ThenBy(r => r.Key, StringComparer.Ordinal)
    .ToList();

var output = new StringBuilder();
output.AppendLine($"HeapStat: pid {options.Pid}{Describe(options.Pid)}");
output.AppendLine($"GC #{snapshot.GcNumber} (gen2, {snapshot.GcReason}), {snapshot.Elapsed.TotalSeconds:0.0} s"
    + (snapshot.Complete ? "" : ", INCOMPLETE (timed out)")
    + (snapshot.EventsLost > 0 ? $", {snapshot.EventsLost:N0} events LOST (figures are low)" : ""));
output.AppendLine($"Heap: {snapshot.Objects:N0} objects, {snapshot.Bytes:N0} bytes ({snapshot.Bytes / 1048576.0:N1} MiB), {rows.Count:N0} types");

long unitCount = 0;
if (options.Per is { } per)
{
    var matches = rows.Where(r => r.Name.Contains(per, StringComparison.Ordinal)).ToList();
    if (matches.Count == 0)
    {
        output.AppendLine($"Unit: no type name contains '{per}'; no per-unit columns");
    }
    else
    {
        // An exact or simple-name match ("SocketConnection" for "...Internal.SocketConnection") wins over longer
        // names that merely contain it (async state machines, factories); otherwise the first by total bytes.
        (string Name, TypeStat Stat) unit = matches.FirstOrDefault(r => IsNameMatch(r.Name, per), matches[0]);
        unitCount = unit.Stat.Count;
        output.AppendLine($"Unit: {unit.Name}: {unitCount:N0} objects; whole heap = {(double)snapshot.Bytes / unitCount:N1} bytes per unit");
        foreach ((string name, TypeStat stat) in matches.Where(m => m.Name != unit.Name).Take(5))
        {
            output.AppendLine($"  also contains '{per}': {stat.Count:N0} x {name}");
        }
    }
}

var shown = rows.Where(r => r.Stat.Count >= options.MinCount).Take(options.Top).ToList();
output.AppendLine();
output.AppendLine($"Top {shown.Count} types by total bytes" + (options.MinCount > 1 ? $" (count >= {options.MinCount:N0})" : "") + ":");

var table = new List<string[]>
{
    unitCount > 0
        ? ["Count", "Bytes", "Avg", "Count/unit", "Bytes/unit", "Type"]
        : ["Count", "Bytes", "Avg", "Type"],
};
foreach ((string name, TypeStat stat) in shown)
{
    string count = stat.Count.ToString("N0");
    string bytes = stat.Bytes.ToString("N0");
    string average = (stat.Bytes / stat.Count).ToString("N0");
    table.Add(unitCount > 0
        ? [count, bytes, average, ((double)stat.Count / unitCount).ToString("N2"), ((double)stat.Bytes / unitCount).ToString("N1"), name]
        : [count, bytes, average, name]);
}
int[] widths = Enumerable.Range(0, table[0].Length - 1).Select(c => table.Max(r => r[c].Length)).ToArray();
foreach (string[] row in table)
{
    for (int c = 0; c < widths.Length; c++)
    {
        output.Append(row[c].PadLeft(widths[c])).Append("  ");
    }
    output.AppendLine(row[^1]);
}

// What the biggest variable-size types (arrays, strings) are made of: their most common sizes.
foreach ((string name, TypeStat stat) in shown.Where(r => r.Stat.Sizes.Count > 1).Take(3))
{
    var common = stat.Sizes.OrderByDescending(s => s.Key * (ulong)s.Value).Take(8)
        .Select(s => $"{s.Value:N0} x {s.Key:N0} B");
    output.AppendLine($"Sizes of {name} (largest totals first): {string.Join(", ", common)}");
}

Console.Out.Write(output.ToString());
return snapshot.Complete ? 0 : 3;

static bool IsNameMatch(string name, string per) =>
    name == per || name.EndsWith("." + per, StringComparison.Ordinal) || name.EndsWith("+" + per, StringComparison.Ordinal);

// The target's command line, so a wrong PID shows at once (Linux only; empty elsewhere).
static string Describe(int pid)
{
    try
    {
        string commandLine = File.ReadAllText($"/proc/{pid}/cmdline").Replace('\0', ' ').Trim();
        return commandLine.Length == 0 ? "" : $": {(commandLine.Length > 120 ? commandLine[..117] + "..." : commandLine)}";
    }
    catch (IOException)
    {
        return "";
    }
    catch (UnauthorizedAccessException)
    {
        return "";
    }
}
