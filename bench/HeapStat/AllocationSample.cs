using System.Diagnostics;
using System.Diagnostics.Tracing;
using Microsoft.Diagnostics.NETCore.Client;
using Microsoft.Diagnostics.Tracing;
using Microsoft.Diagnostics.Tracing.Parsers;

namespace HeapStat;

/// <summary>
/// What a live process allocates, by type, over a few seconds: the runtime's GCAllocationTick events (one per
/// ~100 KB allocated, naming the type of the allocation that crossed the mark), as dotnet-trace's gc-verbose profile
/// collects them. A sample, not a count: a type's bytes are the ticks it drew times their amounts, so rare types are
/// noise and the big ones are right to a few percent over enough ticks.
/// </summary>
internal sealed class AllocationSample
{
    private const string RuntimeProvider = "Microsoft-Windows-DotNETRuntime";

    public Dictionary<string, (long Ticks, long Bytes)> ByType { get; } = new(StringComparer.Ordinal);

    public long Ticks { get; private set; }

    public long Bytes { get; private set; }

    public TimeSpan Elapsed { get; private set; }

    public int EventsLost { get; private set; }

    public static AllocationSample Take(int pid, TimeSpan duration)
    {
        var sample = new AllocationSample();
        var client = new DiagnosticsClient(pid);
        var providers = new[] { new EventPipeProvider(RuntimeProvider, EventLevel.Verbose, (long)ClrTraceEventParser.Keywords.GC) };
        var stopwatch = Stopwatch.StartNew();
        using var session = client.StartEventPipeSession(providers, requestRundown: false, circularBufferMB: 64);
        using var source = new EventPipeEventSource(session.EventStream);
        source.Clr.GCAllocationTick += data =>
        {
            var name = string.IsNullOrEmpty(data.TypeName) ? "(unnamed)" : data.TypeName;
            var amount = data.AllocationAmount64;
            sample.ByType[name] = sample.ByType.TryGetValue(name, out var row) ? (row.Ticks + 1, row.Bytes + amount) : (1, amount);
            sample.Ticks++;
            sample.Bytes += amount;
        };
        var reader = Task.Run(source.Process);
        reader.Wait(duration);
        session.Stop();
        reader.Wait(TimeSpan.FromSeconds(10));
        sample.Elapsed = stopwatch.Elapsed;
        sample.EventsLost = source.EventsLost;
        return sample;
    }
}
