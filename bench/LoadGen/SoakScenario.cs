using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Text;

namespace LoadGen;

/// <summary>
/// `LoadGen soak` (bench/soak.sh): N tunnels that live for the whole run. Each sends numbered messages at its rate and
/// checks every echo (number, tunnel, connection and contents); when a tunnel ends it records how (a Close frame and
/// its code, or EOF/reset without one: 1006), then reconnects after a jittered, bounded backoff. Every message sent
/// ends in exactly one bucket: echoed, lost with a Close (sent but not echoed before the gateway's Close arrived: the
/// gateway said goodbye), or lost without a Close (the tunnel broke silently, an echo was skipped or never came back
/// within --echo-timeout, or it was still missing at the end): that last one must stay 0.
/// </summary>
public static class SoakScenario
{
    private static readonly long Frequency = Stopwatch.Frequency;

    public static async Task<Dictionary<string, object>> RunAsync(Options o)
    {
        var ws = o.GetTarget();
        Target? wss = null;
        if (o.Has("wss-url"))
        {
            wss = o.GetTarget("wss-url");
        }
        var wssShare = wss is null ? 0 : Math.Clamp(o.GetDouble("wss-share", 0.5), 0, 1);
        var n = o.GetInt("conns", 9000);
        var rate = o.GetDouble("rate", 1);
        var size = Math.Max(SoakTunnel.HeaderSize, o.GetInt("size", 64));
        var duration = o.GetDouble("duration", 3600);
        var reportEvery = o.GetDouble("report-every", 60);
        var drainSeconds = o.GetDouble("drain", 10);
        var run = new SoakRun
        {
            Rate = rate,
            Size = size,
            EchoTimeout = (long)(o.GetDouble("echo-timeout", 30) * Frequency),
            BackoffMin = o.GetDouble("backoff-min", 1),
            BackoffMax = o.GetDouble("backoff-max", 15),
            Connects = new SemaphoreSlim(o.GetInt("connect-concurrency", 500)),
        };
        var pids = o.GetPids();
        using var hard = new CancellationTokenSource(TimeSpan.FromSeconds(o.GetDouble("max-seconds", duration + 300)));
        using var stopSending = CancellationTokenSource.CreateLinkedTokenSource(hard.Token);
        using var stopConnecting = CancellationTokenSource.CreateLinkedTokenSource(hard.Token);
        run.StopSending = stopSending.Token;
        run.StopConnecting = stopConnecting.Token;
        run.Hard = hard.Token;

        // Slot i is wss when its place in each hundred falls under the share: the mix is even over time and sources.
        var tunnels = Enumerable.Range(0, n)
            .Select(i => new SoakTunnel(run, i, wss is not null && (i % 100) < wssShare * 100 ? wss : ws)).ToArray();
        var started = Stopwatch.GetTimestamp();
        var s0 = Sample.Take(pids);
        var slots = tunnels.Select(t => Task.Run(t.RunAsync)).ToArray();

        // The initial connects: until every slot has had its first try (or the run ends), then --ready-file.
        while (tunnels.Any(t => !t.FirstTryDone) && !hard.IsCancellationRequested)
        {
            await Task.Delay(100);
        }
        var connectedAtStart = tunnels.Count(t => t.IsOpen);
        Console.Error.WriteLine($"soak: {connectedAtStart} of {n} tunnels open after {Elapsed(started):0.0} s " +
            $"({tunnels.Count(t => t.IsOpen && t.Tls)} wss); sending for {duration} s at {rate} msg/s each");
        if (o.Has("ready-file"))
        {
            File.WriteAllText(o.Get("ready-file", ""), connectedAtStart.ToString(CultureInfo.InvariantCulture));
        }

        // The run: one line every --report-every seconds.
        var windowStart = Stopwatch.GetTimestamp();
        var end = windowStart + (long)(duration * Frequency);
        var nextReport = windowStart + (long)(reportEvery * Frequency);
        var last = s0;
        while (Stopwatch.GetTimestamp() < end && !hard.IsCancellationRequested)
        {
            await Task.Delay(TimeSpan.FromSeconds(Math.Min(1, Math.Max(0.01, (end - Stopwatch.GetTimestamp()) / (double)Frequency))));
            if (Stopwatch.GetTimestamp() >= nextReport && nextReport < end - Frequency) // the end has its own line
            {
                var now = Sample.Take(pids);
                Console.WriteLine(run.Line(Elapsed(windowStart), tunnels.Count(t => t.IsOpen), Sample.OwnCpuPercent(last, now),
                    pids.Length > 0 ? Sample.TargetCpuPercent(last, now) : double.NaN));
                last = now;
                nextReport += (long)(reportEvery * Frequency);
            }
        }
        var s1 = Sample.Take(pids);

        // The end: stop sending, give the echoes in flight --drain seconds, count what is still missing, let the
        // script sample the gateway with every tunnel still open (--end-file / --end-go-file), then close them all.
        stopSending.Cancel();
        var drainUntil = Stopwatch.GetTimestamp() + (long)(drainSeconds * Frequency);
        while (tunnels.Any(t => t.Outstanding > 0) && Stopwatch.GetTimestamp() < drainUntil && !hard.IsCancellationRequested)
        {
            await Task.Delay(50);
        }
        stopConnecting.Cancel();
        foreach (var t in tunnels)
        {
            t.CountMissingAtEnd();
        }
        var openAtEnd = tunnels.Count(t => t.IsOpen);
        Console.WriteLine(run.Line(Elapsed(windowStart), openAtEnd, Sample.OwnCpuPercent(s0, s1),
            pids.Length > 0 ? Sample.TargetCpuPercent(s0, s1) : double.NaN) + " (end; CPU over the whole run)");
        if (o.Has("end-file"))
        {
            File.WriteAllText(o.Get("end-file", ""), openAtEnd.ToString(CultureInfo.InvariantCulture));
            var go = o.Get("end-go-file", "");
            var waitUntil = Stopwatch.GetTimestamp() + 30 * Frequency;
            while (go.Length > 0 && !File.Exists(go) && Stopwatch.GetTimestamp() < waitUntil && !hard.IsCancellationRequested)
            {
                await Task.Delay(50);
            }
        }
        await Scenarios.ForEachAsync(tunnels, 1000, t => t.CloseAtEndAsync());
        await Task.WhenAll(slots).WaitAsync(TimeSpan.FromSeconds(20)).ContinueWith(_ => { });

        var result = run.Result();
        result["conns"] = n;
        result["wss_conns"] = tunnels.Count(t => t.Tls);
        result["open_at_start"] = connectedAtStart;
        result["open_at_end"] = openAtEnd;
        result["rate_per_conn"] = rate;
        result["size"] = size;
        result["duration_s"] = duration;
        result["lg_cpu_pct"] = Sample.OwnCpuPercent(s0, s1);
        if (pids.Length > 0)
        {
            result["target_cpu_pct"] = Sample.TargetCpuPercent(s0, s1);
        }
        if (o.Has("md-out"))
        {
            File.WriteAllText(o.Get("md-out", ""), run.Markdown(result));
        }
        return result;
    }

    private static double Elapsed(long since) => (Stopwatch.GetTimestamp() - since) / (double)Frequency;
}

/// <summary>The run's settings and its counters, shared by every tunnel.</summary>
internal sealed class SoakRun
{
    public double Rate;
    public int Size;
    public long EchoTimeout;
    public double BackoffMin;
    public double BackoffMax;
    public required SemaphoreSlim Connects;
    public CancellationToken StopSending;
    public CancellationToken StopConnecting;
    public CancellationToken Hard;

    public long Sent;
    public long Echoed;
    public long LostWithClose;
    public long LostEof;       // the tunnel ended without a Close frame (EOF, reset, I/O error)
    public long LostSkipped;   // an echo of a later message came first: the earlier one never will
    public long LostTimeout;   // not echoed within --echo-timeout on a tunnel that stayed open
    public long LostAtEnd;     // still missing after --drain at the end of the run
    public long BadEchoes;     // an echo that matches nothing sent on its connection (wrong tunnel, number, contents)
    public long Handshakes;
    public long Reconnects;
    public long ConnectFailures;
    public readonly ConcurrentDictionary<string, long> Ends = new();
    public readonly ConcurrentDictionary<string, long> ConnectErrors = new();
    private readonly long[] _latency = new long[100_001]; // 0.1 ms buckets up to 10 s

    public long LostWithoutClose => Volatile.Read(ref LostEof) + Volatile.Read(ref LostSkipped) + Volatile.Read(ref LostTimeout) + Volatile.Read(ref LostAtEnd);

    public void Latency(long ticks) =>
        Interlocked.Increment(ref _latency[Math.Clamp(ticks * 10_000 / Stopwatch.Frequency, 0, _latency.Length - 1)]);

    public static void Count(ConcurrentDictionary<string, long> counts, string key) => counts.AddOrUpdate(key, 1, static (_, v) => v + 1);

    public string Line(double seconds, int open, double lgCpu, double targetCpu) =>
        string.Create(CultureInfo.InvariantCulture,
            $"soak t={seconds:0}s open={open} sent={Sent} echoed={Echoed} lost_no_close={LostWithoutClose} lost_with_close={LostWithClose} " +
            $"bad_echoes={BadEchoes} reconnects={Reconnects} connect_failures={ConnectFailures} ends=[{Join(Ends)}] " +
            $"connect_errors=[{Join(ConnectErrors)}] lg_cpu={lgCpu:0.#}%{(double.IsNaN(targetCpu) ? "" : $" gateway_cpu={targetCpu:0.#}%")}");

    private static string Join(ConcurrentDictionary<string, long> counts) =>
        string.Join(", ", counts.OrderByDescending(kv => kv.Value).Select(kv => $"{kv.Key}: {kv.Value}"));

    private double PercentileMs(double p) => TenthMsBuckets.PercentileMs(_latency, p);

    public Dictionary<string, object> Result() => new()
    {
        ["sent"] = Sent,
        ["echoed"] = Echoed,
        ["lost_no_close"] = LostWithoutClose,
        ["lost_no_close_eof"] = LostEof,
        ["lost_no_close_skipped"] = LostSkipped,
        ["lost_no_close_timeout"] = LostTimeout,
        ["lost_no_close_at_end"] = LostAtEnd,
        ["lost_with_close"] = LostWithClose,
        ["bad_echoes"] = BadEchoes,
        ["accounted"] = Sent == Echoed + LostWithClose + LostWithoutClose,
        ["handshakes"] = Handshakes,
        ["reconnects"] = Reconnects,
        ["connect_failures"] = ConnectFailures,
        ["ends"] = Join(Ends),
        ["connect_errors"] = Join(ConnectErrors),
        ["echo_p50_ms"] = PercentileMs(50),
        ["echo_p99_ms"] = PercentileMs(99),
        ["echo_max_ms"] = PercentileMs(100),
    };

    public string Markdown(Dictionary<string, object> r)
    {
        var md = new StringBuilder();
        md.AppendLine(CultureInfo.InvariantCulture, $"| tunnels (wss) | sent | echoed | lost without a Close | lost with a Close | bad echoes | reconnects | connect failures | echo p50 / p99 / max ms |");
        md.AppendLine("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        md.AppendLine(CultureInfo.InvariantCulture,
            $"| {r["conns"]} ({r["wss_conns"]}) | {Sent} | {Echoed} | **{LostWithoutClose}** | {LostWithClose} | {BadEchoes} | {Reconnects} | {ConnectFailures} | {r["echo_p50_ms"]} / {r["echo_p99_ms"]} / {r["echo_max_ms"]} |");
        md.AppendLine();
        md.AppendLine("| how tunnels ended (cause: code reason) | count |");
        md.AppendLine("| --- | --- |");
        foreach (var (key, value) in Ends.OrderByDescending(kv => kv.Value))
        {
            md.AppendLine(CultureInfo.InvariantCulture, $"| {key} | {value} |");
        }
        foreach (var (key, value) in ConnectErrors.OrderByDescending(kv => kv.Value))
        {
            md.AppendLine(CultureInfo.InvariantCulture, $"| connect failed: {key} | {value} |");
        }
        if (LostWithoutClose > 0)
        {
            md.AppendLine();
            md.AppendLine(CultureInfo.InvariantCulture,
                $"Lost without a Close: {LostEof} on tunnels that ended without one, {LostSkipped} skipped, {LostTimeout} past the echo timeout, {LostAtEnd} missing at the end.");
        }
        return md.ToString();
    }
}

/// <summary>One tunnel slot for the whole run: connect, send and check, record the end, back off, reconnect.</summary>
internal sealed class SoakTunnel(SoakRun run, int id, Target target)
{
    // Payload: send stamp (8), sequence number on this connection (8), slot id (4), connection number (4), then a
    // pattern derived from the sequence number, so a crossed, duplicated or corrupted echo is seen.
    public const int HeaderSize = 24;

    private readonly object _gate = new();
    private WsConnection? _c;
    private int _generation;
    private long _nextSeq;
    private long _nextExpected;
    private long[] _sentAt = new long[8]; // ring: send stamps of the outstanding messages, by sequence number
    private bool _ended;
    private bool _closingByUs;
    private bool _closeSent;
    private volatile bool _firstTryDone;
    private Task? _reader;

    public bool FirstTryDone { get => _firstTryDone; private set => _firstTryDone = value; }
    public bool Tls => target.Tls;
    public bool IsOpen { get { lock (_gate) { return _c is not null && !_ended; } } }
    public long Outstanding { get { lock (_gate) { return _c is null || _ended ? 0 : _nextSeq - _nextExpected; } } }

    public async Task RunAsync()
    {
        var failures = 0;
        var first = true;
        while (!run.StopConnecting.IsCancellationRequested)
        {
            if (!first)
            {
                // Full jitter over an exponential bound: a thousand clients closed at once come back spread out.
                var bound = Math.Min(run.BackoffMax, run.BackoffMin * Math.Pow(2, Math.Min(failures, 16)));
                try
                {
                    await Task.Delay(TimeSpan.FromSeconds(0.05 + Random.Shared.NextDouble() * bound), run.StopConnecting);
                }
                catch (OperationCanceledException)
                {
                    break;
                }
            }
            WsConnection? c = null;
            try
            {
                await run.Connects.WaitAsync(run.StopConnecting);
                try
                {
                    using var timeout = CancellationTokenSource.CreateLinkedTokenSource(run.StopConnecting);
                    timeout.CancelAfter(TimeSpan.FromSeconds(15));
                    c = await WsConnection.ConnectAsync(target, 2 * 1024, lockWrites: true, timeout.Token);
                }
                finally
                {
                    run.Connects.Release();
                }
            }
            catch (OperationCanceledException) when (run.StopConnecting.IsCancellationRequested)
            {
                break;
            }
            catch (Exception ex)
            {
                Interlocked.Increment(ref run.ConnectFailures);
                SoakRun.Count(run.ConnectErrors, Classify(ex));
                failures++;
                first = false;
                FirstTryDone = true;
                continue;
            }
            Interlocked.Increment(ref run.Handshakes);
            if (!first)
            {
                Interlocked.Increment(ref run.Reconnects);
            }
            first = false;
            failures = 0;
            await RunSessionAsync(c);
            if (_closingByUs)
            {
                break;
            }
        }
        FirstTryDone = true;
    }

    private async Task RunSessionAsync(WsConnection c)
    {
        using var session = CancellationTokenSource.CreateLinkedTokenSource(run.Hard);
        lock (_gate)
        {
            _c = c;
            _generation++;
            _nextSeq = _nextExpected = 0;
            _ended = false;
            _closeSent = false;
        }
        FirstTryDone = true;
        var reader = _reader = Task.Run(() => ReadLoopAsync(c, session.Token));
        var sender = Task.Run(() => SendLoopAsync(c, session.Token));
        await reader;
        session.Cancel();
        await sender;
        c.Dispose();
        lock (_gate)
        {
            _c = null;
        }
    }

    private async Task SendLoopAsync(WsConnection c, CancellationToken ct)
    {
        var period = (long)(Stopwatch.Frequency / run.Rate);
        var next = Stopwatch.GetTimestamp() + Random.Shared.NextInt64(Math.Max(1, period));
        var payload = new byte[run.Size];
        var frame = new byte[run.Size + 14];
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(ct, run.StopSending);
        while (!stop.IsCancellationRequested)
        {
            try
            {
                var wait = next - Stopwatch.GetTimestamp();
                if (wait > 0)
                {
                    await Task.Delay(TimeSpan.FromSeconds(wait / (double)Stopwatch.Frequency), stop.Token);
                }
            }
            catch (OperationCanceledException)
            {
                return;
            }
            next += period;
            long seq;
            int length;
            lock (_gate)
            {
                if (_ended || _closingByUs || stop.IsCancellationRequested)
                {
                    return;
                }
                var now = Stopwatch.GetTimestamp();
                if (_nextSeq > _nextExpected && now - _sentAt[_nextExpected % _sentAt.Length] > run.EchoTimeout)
                {
                    // An echo overdue on a tunnel that is still open: the message is gone without a goodbye.
                    Interlocked.Add(ref run.LostTimeout, _nextSeq - _nextExpected);
                    EndLocked("echo timeout (no Close)");
                    c.Dispose(); // the reader ends on it
                    return;
                }
                seq = _nextSeq++;
                if (_nextSeq - _nextExpected > _sentAt.Length)
                {
                    var grown = new long[_sentAt.Length * 2];
                    for (var s = _nextExpected; s < seq; s++)
                    {
                        grown[s % grown.Length] = _sentAt[s % _sentAt.Length];
                    }
                    _sentAt = grown;
                }
                _sentAt[seq % _sentAt.Length] = now;
                Interlocked.Increment(ref run.Sent);
                Fill(payload, now, seq, id, _generation);
                length = c.WriteFrame(frame, 0x2, payload);
            }
            try
            {
                await c.SendLockedAsync(frame.AsMemory(0, length), ct);
            }
            catch (Exception ex) when (ex is OperationCanceledException or IOException or SocketException or ObjectDisposedException)
            {
                lock (_gate)
                {
                    // The write failed: the message never left, unless the tunnel's end already counted it as lost.
                    if (!_ended && _nextSeq == seq + 1 && _nextExpected <= seq)
                    {
                        _nextSeq--;
                        Interlocked.Decrement(ref run.Sent);
                    }
                }
                return;
            }
        }
    }

    private async Task ReadLoopAsync(WsConnection c, CancellationToken ct)
    {
        var reply = new byte[256];
        try
        {
            while (true)
            {
                var replyLength = 0;
                while (c.TryReadFrame(out var opcode, out var payload))
                {
                    switch (opcode)
                    {
                        case 0x1:
                        case 0x2:
                            OnEcho(payload);
                            break;
                        case 0x9:
                            if (replyLength + payload.Length + 14 > reply.Length)
                            {
                                Array.Resize(ref reply, replyLength + payload.Length + 14);
                            }
                            replyLength += c.WriteFrame(reply.AsSpan(replyLength), 0xA, payload);
                            break;
                        case 0x8:
                            var code = payload.Length >= 2 ? BinaryPrimitives.ReadUInt16BigEndian(payload) : 1005;
                            var reason = payload.Length > 2 ? Encoding.UTF8.GetString(payload[2..]) : "";
                            var answer = new byte[16];
                            var answerLength = OnClose(code, reason) ? c.WriteFrame(answer, 0x8, payload[..Math.Min(2, payload.Length)]) : 0;
                            await FinishAsync(c, answer.AsMemory(0, answerLength));
                            return;
                    }
                }
                if (replyLength > 0)
                {
                    await c.SendLockedAsync(reply.AsMemory(0, replyLength), ct);
                }
                if (!await c.FillAsync(ct))
                {
                    OnBroken("1006 EOF without a Close");
                    return;
                }
            }
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionReset)
        {
            OnBroken("1006 TCP reset without a Close");
        }
        catch (IOException ex) when (ex.InnerException is SocketException { SocketErrorCode: SocketError.ConnectionReset })
        {
            OnBroken("1006 TCP reset without a Close");
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or SocketException or InvalidDataException or ObjectDisposedException)
        {
            OnBroken($"1006 {ex.GetType().Name} without a Close");
        }
    }

    private void OnEcho(ReadOnlySpan<byte> payload)
    {
        var now = Stopwatch.GetTimestamp();
        lock (_gate)
        {
            if (_ended || _closingByUs)
            {
                return; // counted off already (the end's drain is over)
            }
            var seq = payload.Length >= HeaderSize ? BinaryPrimitives.ReadInt64LittleEndian(payload[8..]) : -1;
            if (seq < _nextExpected || seq >= _nextSeq || !Matches(payload, seq, id, _generation, run.Size))
            {
                Interlocked.Increment(ref run.BadEchoes);
                return;
            }
            if (seq > _nextExpected)
            {
                Interlocked.Add(ref run.LostSkipped, seq - _nextExpected);
            }
            _nextExpected = seq + 1;
            Interlocked.Increment(ref run.Echoed);
            run.Latency(now - WsConnection.ReadStamp(payload));
        }
    }

    /// <summary>Records the peer's Close; true when it is to be answered (we have not sent ours).</summary>
    private bool OnClose(int code, string reason)
    {
        lock (_gate)
        {
            var answer = !_closeSent;
            _closeSent = true;
            if (_closingByUs)
            {
                EndLocked("our Close at the end of the run (answered)");
                return answer;
            }
            // Sent but not echoed before the gateway's Close: a goodbye the client heard.
            Interlocked.Add(ref run.LostWithClose, _nextSeq - _nextExpected);
            _nextExpected = _nextSeq;
            EndLocked(string.Create(CultureInfo.InvariantCulture, $"Close {code} {reason}").TrimEnd());
            return answer;
        }
    }

    private void OnBroken(string cause)
    {
        lock (_gate)
        {
            if (_ended)
            {
                return; // an echo timeout or the end of the run ended it first
            }
            Interlocked.Add(ref run.LostEof, _nextSeq - _nextExpected);
            _nextExpected = _nextSeq;
            EndLocked(_closingByUs ? $"{cause} at the end of the run" : cause);
        }
    }

    private void EndLocked(string cause)
    {
        _ended = true;
        SoakRun.Count(run.Ends, cause);
    }

    /// <summary>Answers a Close and waits (bounded) for the end of stream, so the server side closes TCP first.</summary>
    private static async Task FinishAsync(WsConnection c, ReadOnlyMemory<byte> answer)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            if (answer.Length > 0)
            {
                await c.SendLockedAsync(answer, timeout.Token);
            }
            while (await c.FillAsync(timeout.Token))
            {
                while (c.TryReadFrame(out _, out _))
                {
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or SocketException or InvalidDataException or ObjectDisposedException)
        {
        }
    }

    /// <summary>After the end's drain: what is still missing on an open tunnel counts as lost without a Close.</summary>
    public void CountMissingAtEnd()
    {
        lock (_gate)
        {
            if (_c is not null && !_ended)
            {
                Interlocked.Add(ref run.LostAtEnd, _nextSeq - _nextExpected);
                _nextExpected = _nextSeq;
            }
            _closingByUs = true;
        }
    }

    /// <summary>Our Close; the reader sees the answering Close and the end of stream (bounded).</summary>
    public async Task CloseAtEndAsync()
    {
        WsConnection? c;
        Task? reader;
        lock (_gate)
        {
            _closingByUs = true;
            c = _ended || _closeSent ? null : _c;
            _closeSent = true;
            reader = _reader;
        }
        if (c is null || reader is null)
        {
            return;
        }
        try
        {
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            await c.SendCloseAsync(timeout.Token);
            await reader.WaitAsync(timeout.Token);
        }
        catch (Exception ex) when (ex is OperationCanceledException or TimeoutException or IOException or SocketException or ObjectDisposedException)
        {
            c.Dispose();
        }
    }

    private static void Fill(Span<byte> payload, long stamp, long seq, int id, int generation)
    {
        BinaryPrimitives.WriteInt64LittleEndian(payload, stamp);
        BinaryPrimitives.WriteInt64LittleEndian(payload[8..], seq);
        BinaryPrimitives.WriteInt32LittleEndian(payload[16..], id);
        BinaryPrimitives.WriteInt32LittleEndian(payload[20..], generation);
        for (var i = HeaderSize; i < payload.Length; i++)
        {
            payload[i] = (byte)(seq * 31 + i);
        }
    }

    private static bool Matches(ReadOnlySpan<byte> payload, long seq, int id, int generation, int size)
    {
        if (payload.Length != size
            || BinaryPrimitives.ReadInt32LittleEndian(payload[16..]) != id
            || BinaryPrimitives.ReadInt32LittleEndian(payload[20..]) != generation)
        {
            return false;
        }
        for (var i = HeaderSize; i < payload.Length; i++)
        {
            if (payload[i] != (byte)(seq * 31 + i))
            {
                return false;
            }
        }
        return true;
    }

    private static string Classify(Exception ex) => ex switch
    {
        OperationCanceledException => "timeout (15 s)",
        AuthenticationException => "TLS handshake",
        SocketException s => $"socket {s.SocketErrorCode}",
        IOException { InnerException: SocketException s } => $"socket {s.SocketErrorCode}",
        IOException io when io.Message.StartsWith("handshake refused: ", StringComparison.Ordinal) => io.Message["handshake refused: ".Length..],
        IOException io => io.Message,
        _ => ex.GetType().Name,
    };
}
