using System.Diagnostics;
using System.Diagnostics.Tracing;
using Microsoft.Diagnostics.NETCore.Client;
using Microsoft.Diagnostics.Tracing;
using Microsoft.Diagnostics.Tracing.Parsers;
using Microsoft.Diagnostics.Tracing.Parsers.Clr;

namespace HeapStat;

/// <summary>Object count and total size of one type on the heap.</summary>
internal sealed class TypeStat
{
    public long Count;
    public long Bytes;

    /// <summary>Objects per size: arrays and strings vary, and the sizes often say what they are (a 4 KiB block, a 64 KiB buffer).</summary>
    public Dictionary<ulong, long> Sizes { get; } = [];
}

/// <summary>
/// One heap walk of a live process, taken the way dotnet-gcdump takes it: an EventPipe session with the
/// runtime's heap-snapshot keywords makes the runtime run a full blocking GC and stream every live object
/// (GCBulkNode) and every type it meets (GCBulkType). Only the per-type counts and sizes are kept, not the
/// object graph, so the tool's memory stays proportional to the number of types.
/// </summary>
internal sealed class HeapSnapshot
{
    private const string RuntimeProvider = "Microsoft-Windows-DotNETRuntime";

    private readonly Dictionary<ulong, BulkType> _types = new();

    /// <summary>Objects per runtime type id (a MethodTable address).</summary>
    public Dictionary<ulong, TypeStat> ByTypeId { get; } = new();
    public long Objects { get; private set; }
    public long Bytes { get; private set; }
    public int GcNumber { get; private set; } = -1;
    public string GcReason { get; private set; } = "";
    /// <summary>True when the walked GC's end event arrived (otherwise the figures may be partial).</summary>
    public bool Complete { get; private set; }
    public int EventsLost { get; private set; }
    public TimeSpan Elapsed { get; private set; }

    public static HeapSnapshot Take(int pid, TimeSpan timeout, TextWriter log)
    {
        var stopwatch = Stopwatch.StartNew();
        var client = new DiagnosticsClient(pid);
        FlushTypeTable(client);

        var snapshot = new HeapSnapshot();
        var providers = new[]
        {
            new EventPipeProvider(RuntimeProvider, EventLevel.Informational, (long)ClrTraceEventParser.Keywords.GCHeapSnapshot),
        };
        // No rundown: it names methods and modules, which a histogram does not need, and costs time at Stop.
        // The buffer size is a cap the target grows into only while this reader lags behind the heap walk;
        // events past it are dropped, and reported (EventsLost).
        using var session = client.StartEventPipeSession(providers, requestRundown: false, circularBufferMB: 256);
        using var source = new EventPipeEventSource(session.EventStream);

        var walked = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        source.Clr.GCStart += e =>
        {
            // The first full blocking GC is the one that walks the heap (normally the one the session induced).
            if (snapshot.GcNumber < 0 && e.Depth == 2 && e.Type != GCType.BackgroundGC)
            {
                snapshot.GcNumber = e.Count;
                snapshot.GcReason = e.Reason.ToString();
            }
        };
        source.Clr.GCStop += e =>
        {
            if (snapshot.GcNumber >= 0 && e.Count == snapshot.GcNumber && snapshot.Objects > 0)
            {
                walked.TrySetResult();
            }
        };
        source.Clr.TypeBulkType += snapshot.OnBulkType;
        source.Clr.GCBulkNode += snapshot.OnBulkNode;

        var reader = Task.Run(source.Process);
        int finished = Task.WaitAny([walked.Task, reader], timeout);
        snapshot.Complete = walked.Task.IsCompleted;
        if (finished < 0)
        {
            log.WriteLine($"warning: no end of the heap walk within {timeout.TotalSeconds:0} s; the figures may be partial");
        }

        // Stopping flushes the session's buffers, so every event written before the GC's end is still read.
        try
        {
            session.Stop();
        }
        catch (Exception e) when (e is ServerNotAvailableException or EndOfStreamException or IOException or TimeoutException)
        {
            log.WriteLine($"warning: stopping the session: {e.Message}");
        }
        if (!reader.Wait(TimeSpan.FromSeconds(30)))
        {
            log.WriteLine("warning: the event stream did not end 30 s after the session was stopped");
        }

        snapshot.EventsLost = source.EventsLost;
        snapshot.Elapsed = stopwatch.Elapsed;
        return snapshot;
    }

    /// <summary>
    /// The runtime logs each type once and forgets which it logged only when it sees the Type keyword off at a
    /// session change; the end of an earlier snapshot session (ours or dotnet-gcdump's) can leave that memory
    /// behind, and this walk would then name none of the types logged before. Opening and closing any session
    /// makes it look again, as dotnet-gcdump does before each dump.
    /// </summary>
    private static void FlushTypeTable(DiagnosticsClient client)
    {
        var providers = new[] { new EventPipeProvider("Microsoft-DotNETCore-SampleProfiler", EventLevel.Informational) };
        using var session = client.StartEventPipeSession(providers, requestRundown: false, circularBufferMB: 16);
        using var source = new EventPipeEventSource(session.EventStream);
        var firstEvent = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        source.AllEvents += _ => firstEvent.TrySetResult();
        var reader = Task.Run(source.Process);
        Task.WaitAny([firstEvent.Task, reader], TimeSpan.FromSeconds(5));
        session.Stop();
        reader.Wait(TimeSpan.FromSeconds(10));
    }

    private void OnBulkType(GCBulkTypeTraceData data)
    {
        for (int i = 0; i < data.Count; i++)
        {
            GCBulkTypeValues value = data.Values(i);
            var parameters = new ulong[value.TypeParameterCount];
            for (int j = 0; j < parameters.Length; j++)
            {
                parameters[j] = value.TypeParameterID(j);
            }
            _types[value.TypeID] = new BulkType(value.TypeName, parameters);
        }
    }

    private void OnBulkNode(GCBulkNodeTraceData data)
    {
        for (int i = 0; i < data.Count; i++)
        {
            GCBulkNodeValues node = data.Values(i);
            if (!ByTypeId.TryGetValue(node.TypeID, out TypeStat? stat))
            {
                stat = new TypeStat();
                ByTypeId.Add(node.TypeID, stat);
            }
            stat.Count++;
            stat.Bytes += (long)node.Size;
            stat.Sizes[node.Size] = stat.Sizes.GetValueOrDefault(node.Size) + 1;
            Objects++;
            Bytes += (long)node.Size;
        }
    }

    /// <summary>The type's name, with its generic arguments when the runtime logged them separately.</summary>
    public string TypeName(ulong typeId) => TypeName(typeId, depth: 0);

    private string TypeName(ulong typeId, int depth)
    {
        if (!_types.TryGetValue(typeId, out BulkType? type) || type.Name.Length == 0)
        {
            return $"<type 0x{typeId:x}>";
        }
        if (type.Parameters.Length == 0 || type.Name.Contains('<') || type.Name.Contains('[') || depth > 8)
        {
            return type.Name;
        }
        return type.Name + "<" + string.Join(", ", type.Parameters.Select(p => TypeName(p, depth + 1))) + ">";
    }

    private sealed record BulkType(string Name, ulong[] Parameters);
}
