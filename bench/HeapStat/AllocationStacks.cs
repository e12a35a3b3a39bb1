using System.Diagnostics.Tracing;
using Microsoft.Diagnostics.NETCore.Client;
using Microsoft.Diagnostics.Tracing;
using Microsoft.Diagnostics.Tracing.Etlx;
using Microsoft.Diagnostics.Tracing.Parsers;
using Microsoft.Diagnostics.Tracing.Parsers.Clr;

namespace HeapStat;

/// <summary>
/// Where a type's allocations come from: the same sampled GCAllocationTick events as <see cref="AllocationSample"/>,
/// with the managed stack EventPipe records for each, grouped by the stack's top frames. Method names come from the JIT
/// events and the rundown at the end of the session, so ReadyToRun code (most of the framework) resolves only when the
/// target runs with <c>DOTNET_ReadyToRun=0</c>; say so in the output rather than print addresses.
/// </summary>
internal static class AllocationStacks
{
    private const string RuntimeProvider = "Microsoft-Windows-DotNETRuntime";

    public static string Take(int pid, TimeSpan duration, string typeSubstring, int frames, int top)
    {
        var keywords = ClrTraceEventParser.Keywords.GC | ClrTraceEventParser.Keywords.Jit | ClrTraceEventParser.Keywords.Loader
            | ClrTraceEventParser.Keywords.Stack;
        var providers = new[] { new EventPipeProvider(RuntimeProvider, EventLevel.Verbose, (long)keywords) };
        var path = Path.Combine(Path.GetTempPath(), $"heapstat-{pid}-{Environment.ProcessId}.nettrace");
        var client = new DiagnosticsClient(pid);
        using (var session = client.StartEventPipeSession(providers, requestRundown: true, circularBufferMB: 256))
        {
            using var file = File.Create(path);
            var copy = session.EventStream.CopyToAsync(file);
            Thread.Sleep(duration);
            session.Stop();
            copy.Wait(TimeSpan.FromSeconds(60));
        }
        try
        {
            var etlx = TraceLog.CreateFromEventPipeDataFile(path);
            try
            {
                using var log = new TraceLog(etlx);
                return Group(log, typeSubstring, frames, top);
            }
            finally
            {
                File.Delete(etlx);
            }
        }
        finally
        {
            File.Delete(path);
        }
    }

    private static string Group(TraceLog log, string typeSubstring, int frames, int top)
    {
        var byStack = new Dictionary<string, (long Ticks, long Bytes)>(StringComparer.Ordinal);
        long ticks = 0, bytes = 0, unresolved = 0;
        foreach (var data in log.Events.ByEventType<GCAllocationTickTraceData>())
        {
            if (data.TypeName is not { } name || !name.Contains(typeSubstring, StringComparison.Ordinal))
            {
                continue;
            }
            var lines = new List<string>(frames + 1) { name };
            for (var frame = data.CallStack(); frame is not null && lines.Count <= frames; frame = frame.Caller)
            {
                var method = frame.CodeAddress.FullMethodName;
                if (string.IsNullOrEmpty(method))
                {
                    unresolved++;
                    method = $"?{frame.CodeAddress.ModuleName}";
                }
                lines.Add(method);
            }
            var key = lines.Count == 1 ? name + "\n      (no stack)" : string.Join("\n      ", lines);
            var amount = data.AllocationAmount64;
            byStack[key] = byStack.TryGetValue(key, out var row) ? (row.Ticks + 1, row.Bytes + amount) : (1, amount);
            ticks++;
            bytes += amount;
        }
        var output = new System.Text.StringBuilder();
        output.AppendLine($"Allocation ticks on types containing '{typeSubstring}': {ticks:N0}, {bytes:N0} bytes sampled"
            + (unresolved > 0 ? $" ({unresolved:N0} frames without a name: run the target with DOTNET_ReadyToRun=0)" : ""));
        foreach (var (stack, row) in byStack.OrderByDescending(kv => kv.Value.Ticks).Take(top))
        {
            output.AppendLine($"{row.Ticks,6:N0} ticks {100.0 * row.Ticks / Math.Max(1, ticks),5:0.0}%");
            output.AppendLine($"      {stack}");
        }
        return output.ToString();
    }
}
