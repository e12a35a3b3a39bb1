using System.Diagnostics;
using System.Net.Sockets;

namespace LoadGen;

/// <summary>The per-connection receive side: parses what arrived, records latencies, prepares replies.</summary>
public sealed class Session
{
    public readonly WsConnection C;
    private byte[] _out = new byte[1024];
    private readonly byte[] _payload;

    /// <summary>Only messages stamped at or after From and received at or before To are counted.</summary>
    public long From;
    public long To = long.MaxValue;
    /// <summary>Rate mode with --drain: count by send stamp alone (stamped in [From, To)), however late the echo.</summary>
    public bool ByStamp;
    /// <summary>Echo mode: each echo received before To is answered with a new message (keeps K in flight).</summary>
    public bool Resend;
    public int Outstanding;
    public bool Closed;
    public bool Failed;
    public long Sent;

    public Session(WsConnection connection, int size)
    {
        C = connection;
        _payload = new byte[Math.Max(8, size)];
    }

    public ReadOnlyMemory<byte> Out(int length) => _out.AsMemory(0, length);

    /// <summary>Handles every complete frame in the receive buffer; returns how many reply bytes are in Out.</summary>
    public int Process()
    {
        var length = 0;
        var now = Stopwatch.GetTimestamp();
        while (C.TryReadFrame(out var opcode, out var payload))
        {
            switch (opcode)
            {
                case 0x0:
                case 0x1:
                case 0x2:
                    var stamp = WsConnection.ReadStamp(payload);
                    if (stamp >= From && (ByStamp ? stamp < To : now <= To))
                    {
                        C.Latencies.Add(WsConnection.ToMicros(now - stamp));
                        C.Received++;
                    }
                    Outstanding--;
                    if (Resend && now < To)
                    {
                        WsConnection.StampPayload(_payload, now);
                        length = Append(length, 0x2, _payload);
                        Outstanding++;
                        Sent++;
                    }
                    break;
                case 0x9:
                    length = Append(length, 0xA, payload);
                    C.PingsAnswered++;
                    break;
                case 0x8:
                    Closed = true;
                    return length;
            }
        }
        return length;
    }

    /// <summary>Writes a fresh stamped message into Out at offset 0 (for the first K of echo mode).</summary>
    public int AppendMessage(int length, long now)
    {
        WsConnection.StampPayload(_payload, now);
        return Append(length, 0x2, _payload);
    }

    private int Append(int length, byte opcode, ReadOnlySpan<byte> payload)
    {
        var needed = length + payload.Length + 14;
        if (needed > _out.Length)
        {
            Array.Resize(ref _out, Math.Max(needed, _out.Length * 2));
        }
        return length + C.WriteFrame(_out.AsSpan(length), opcode, payload);
    }
}

public static class Scenarios
{
    private static readonly long Frequency = Stopwatch.Frequency;

    private sealed record Opened(List<WsConnection> Connections, List<int> HandshakeMicros, int Failures, string? FirstError,
        double Seconds, double OwnCpuPercent);

    /// <summary>Opens `count` WebSockets with at most `concurrency` connects in flight; each connect is bounded to 15 s.</summary>
    private static async Task<Opened> OpenAsync(Target target, int count, int concurrency, int bufferSize, bool lockWrites, CancellationToken ct)
    {
        var connections = new WsConnection?[count];
        var handshakes = new int[count];
        var next = -1;
        var failures = 0;
        string? firstError = null;
        var before = Sample.Take([]);
        var workers = new Task[Math.Max(1, Math.Min(concurrency, count))];
        for (var w = 0; w < workers.Length; w++)
        {
            workers[w] = Task.Run(async () =>
            {
                int i;
                while ((i = Interlocked.Increment(ref next)) < count && !ct.IsCancellationRequested)
                {
                    var started = Stopwatch.GetTimestamp();
                    try
                    {
                        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                        timeout.CancelAfter(TimeSpan.FromSeconds(15));
                        connections[i] = await WsConnection.ConnectAsync(target, bufferSize, lockWrites, timeout.Token);
                        handshakes[i] = WsConnection.ToMicros(Stopwatch.GetTimestamp() - started);
                    }
                    catch (Exception ex)
                    {
                        Interlocked.Increment(ref failures);
                        Interlocked.CompareExchange(ref firstError, $"{ex.GetType().Name}: {ex.Message}", null);
                        handshakes[i] = -1;
                    }
                }
            }, CancellationToken.None);
        }
        await Task.WhenAll(workers);
        var after = Sample.Take([]);
        var open = new List<WsConnection>(count);
        var micros = new List<int>(count);
        for (var i = 0; i < count; i++)
        {
            if (connections[i] is { } c)
            {
                open.Add(c);
                micros.Add(handshakes[i]);
            }
        }
        return new Opened(open, micros, failures, firstError, Sample.Seconds(before, after), Sample.OwnCpuPercent(before, after));
    }

    private static async Task DelayUntil(long timestamp, CancellationToken ct)
    {
        var wait = timestamp - Stopwatch.GetTimestamp();
        if (wait > 0)
        {
            await Task.Delay(TimeSpan.FromSeconds(wait / (double)Frequency), ct);
        }
    }

    internal static async Task ForEachAsync<T>(IReadOnlyList<T> items, int concurrency, Func<T, Task> body)
    {
        var next = -1;
        var workers = new Task[Math.Max(1, Math.Min(concurrency, items.Count))];
        for (var w = 0; w < workers.Length; w++)
        {
            workers[w] = Task.Run(async () =>
            {
                int i;
                while ((i = Interlocked.Increment(ref next)) < items.Count)
                {
                    await body(items[i]);
                }
            });
        }
        await Task.WhenAll(workers);
    }

    private static CancellationTokenSource HardStop(Options o, double seconds) =>
        new(TimeSpan.FromSeconds(o.GetDouble("max-seconds", seconds + 120)));

    private static void AddOpen(Dictionary<string, object> result, Opened opened, int requested)
    {
        result["conns"] = opened.Connections.Count;
        result["conn_failures"] = opened.Failures;
        if (opened.FirstError is { } error)
        {
            result["first_error"] = error;
        }
        if (opened.Failures > requested / 100 + 1)
        {
            Console.Error.WriteLine($"loadgen: {opened.Failures} of {requested} connections failed; first: {opened.FirstError}");
        }
    }

    private static List<int> AllLatencies(IEnumerable<WsConnection> connections)
    {
        var all = new List<int>();
        foreach (var c in connections)
        {
            c.Latencies.CopyTo(all);
        }
        return all;
    }

    // ---- echo: N connections, K messages in flight each ----

    public static async Task<Dictionary<string, object>> EchoAsync(Options o)
    {
        var target = o.GetTarget();
        var n = o.GetInt("conns", 100);
        var k = o.GetInt("inflight", 10);
        var size = Math.Max(8, o.GetInt("size", 64));
        var duration = o.GetDouble("duration", 10);
        var warmup = o.GetDouble("warmup", 1);
        var pids = o.GetPids();
        using var hard = HardStop(o, warmup + duration);

        var opened = await OpenAsync(target, n, o.GetInt("connect-concurrency", 500), 64 * 1024, lockWrites: false, hard.Token);
        var start = Stopwatch.GetTimestamp();
        var from = start + (long)(warmup * Frequency);
        var to = from + (long)(duration * Frequency);
        using var drain = CancellationTokenSource.CreateLinkedTokenSource(hard.Token);
        drain.CancelAfter(TimeSpan.FromSeconds(warmup + duration + 3));

        Sample s0 = default, s1 = default;
        var sampler = Task.Run(async () =>
        {
            await DelayUntil(from, hard.Token);
            s0 = Sample.Take(pids);
            await DelayUntil(to, hard.Token);
            s1 = Sample.Take(pids);
        });
        var sessions = opened.Connections.Select(c => new Session(c, size) { From = from, To = to, Resend = true }).ToList();
        await Task.WhenAll(sessions.Select(s => Task.Run(() => EchoLoopAsync(s, k, drain.Token))));
        await sampler;

        var received = sessions.Sum(s => s.C.Received);
        var result = new Dictionary<string, object>();
        AddOpen(result, opened, n);
        result["inflight"] = k;
        result["size"] = size;
        result["duration_s"] = duration;
        result["msgs_per_s"] = Math.Round(received / Sample.Seconds(s0, s1));
        Stats.AddLatencies(result, "", AllLatencies(opened.Connections));
        result["target_cpu_pct"] = Sample.TargetCpuPercent(s0, s1);
        result["lg_cpu_pct"] = Sample.OwnCpuPercent(s0, s1);
        result["errors"] = sessions.Count(s => s.Failed);

        await ForEachAsync(sessions, 500, s => s.Failed || !s.Closed && s.Outstanding > 0
            ? Task.Run(s.C.Dispose)
            : s.C.CloseAsync(TimeSpan.FromSeconds(2)));
        return result;
    }

    private static async Task EchoLoopAsync(Session s, int inflight, CancellationToken ct)
    {
        try
        {
            var now = Stopwatch.GetTimestamp();
            var length = 0;
            for (var i = 0; i < inflight; i++)
            {
                length = s.AppendMessage(length, now);
            }
            s.Outstanding = inflight;
            await s.C.SendRawAsync(s.Out(length), ct);
            while (true)
            {
                length = s.Process();
                if (length > 0)
                {
                    await s.C.SendRawAsync(s.Out(length), ct);
                }
                if (s.Closed || (s.Outstanding <= 0 && Stopwatch.GetTimestamp() >= s.To))
                {
                    return;
                }
                if (!await s.C.FillAsync(ct))
                {
                    s.Failed = true;
                    return;
                }
            }
        }
        catch (OperationCanceledException)
        {
            // Drain deadline: replies still outstanding are simply not counted.
        }
        catch (Exception ex) when (ex is IOException or SocketException or InvalidDataException or ObjectDisposedException)
        {
            s.Failed = true;
        }
    }

    // ---- rate: N connections x R messages/s each ----

    public static async Task<Dictionary<string, object>> RateAsync(Options o)
    {
        var target = o.GetTarget();
        var n = o.GetInt("conns", 1000);
        var rate = o.GetDouble("rate", 10);
        var size = Math.Max(8, o.GetInt("size", 128));
        var duration = o.GetDouble("duration", 20);
        var warmup = o.GetDouble("warmup", 2);
        var pids = o.GetPids();
        using var hard = HardStop(o, warmup + duration);

        // --open-seconds bounds the connect phase (connects still pending then count as failures), so a machine that
        // can no longer connect is reported rather than waited on.
        using var opening = CancellationTokenSource.CreateLinkedTokenSource(hard.Token);
        if (o.Has("open-seconds"))
        {
            opening.CancelAfter(TimeSpan.FromSeconds(o.GetDouble("open-seconds", 60)));
        }
        var opened = await OpenAsync(target, n, o.GetInt("connect-concurrency", 500), 8 * 1024, lockWrites: true, opening.Token);
        if (opened.Connections.Count + opened.Failures < n)
        {
            Console.Error.WriteLine($"loadgen: connect phase ended after {opened.Seconds:0.#} s (--open-seconds) with " +
                $"{n - opened.Connections.Count - opened.Failures} of {n} connections not attempted");
        }
        var waited = await BarrierAsync(o, opened.Connections.Count, hard.Token);
        var start = Stopwatch.GetTimestamp();
        var from = start + (long)(warmup * Frequency);
        var to = from + (long)(duration * Frequency);
        // --drain (seconds after the window): count and time every message stamped in the window, however late its echo
        // arrives within the drain; without it, as before, only echoes received inside the window.
        var byStamp = o.Has("drain");
        var sessions = opened.Connections.Select(c => new Session(c, size) { From = from, To = to, ByStamp = byStamp }).ToList();
        var readers = sessions.Select(s => Task.Run(() => ReadLoopAsync(s, hard.Token))).ToArray();

        Sample s0 = default, s1 = default;
        var sampler = Task.Run(async () =>
        {
            await DelayUntil(from, hard.Token);
            s0 = Sample.Take(pids);
            await DelayUntil(to, hard.Token);
            s1 = Sample.Take(pids);
        });
        await Task.WhenAll(sessions.Select(s => Task.Run(() => SendLoopAsync(s, size, rate, from, to, hard.Token))));
        await sampler;
        await Task.Delay(TimeSpan.FromSeconds(o.GetDouble("drain", 1))); // replies in flight at the end

        var received = sessions.Sum(s => s.C.Received);
        var sent = sessions.Sum(s => s.Sent);
        var seconds = Sample.Seconds(s0, s1);
        var result = new Dictionary<string, object>();
        AddOpen(result, opened, n);
        result["requested"] = n;
        result["received"] = received;
        result["sent"] = sent;
        result["barrier_wait_s"] = Math.Round(waited, 2);
        var latencies = AllLatencies(opened.Connections);
        if (o.Has("hist-out"))
        {
            LatencyHistogram.Write(o.Get("hist-out", ""), LatencyHistogram.From(latencies));
        }
        result["rate_per_conn"] = rate;
        result["size"] = size;
        result["duration_s"] = duration;
        result["expected_per_s"] = Math.Round(opened.Connections.Count * rate);
        result["sent_per_s"] = Math.Round(sent / seconds);
        result["achieved_per_s"] = Math.Round(received / seconds);
        Stats.AddLatencies(result, "", latencies);
        result["target_cpu_pct"] = Sample.TargetCpuPercent(s0, s1);
        result["lg_cpu_pct"] = Sample.OwnCpuPercent(s0, s1);
        result["errors"] = sessions.Count(s => s.Failed);

        await CloseWithReadersAsync(sessions, readers);
        return result;
    }

    /// <summary>
    /// Several LoadGen processes start their windows together (bench/seeds-scale.sh): once its connections are open
    /// each writes --ready-file (with how many it opened) and waits for --go-file to exist. Returns the seconds waited.
    /// </summary>
    private static async Task<double> BarrierAsync(Options o, int openCount, CancellationToken ct)
    {
        if (!o.Has("go-file"))
        {
            return 0;
        }
        var started = Stopwatch.GetTimestamp();
        if (o.Has("ready-file"))
        {
            File.WriteAllText(o.Get("ready-file", ""), openCount.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }
        var go = o.Get("go-file", "");
        while (!File.Exists(go))
        {
            await Task.Delay(20, ct);
        }
        return (Stopwatch.GetTimestamp() - started) / (double)Frequency;
    }

    private static async Task SendLoopAsync(Session s, int size, double rate, long from, long to, CancellationToken ct)
    {
        var period = (long)(Frequency / rate);
        var next = Stopwatch.GetTimestamp() + Random.Shared.NextInt64(Math.Max(1, period));
        var payload = new byte[size];
        var frame = new byte[size + 14];
        try
        {
            while (next < to && !s.Failed)
            {
                await DelayUntil(next, ct);
                var now = Stopwatch.GetTimestamp();
                WsConnection.StampPayload(payload, now);
                var length = s.C.WriteFrame(frame, 0x2, payload);
                await s.C.SendLockedAsync(frame.AsMemory(0, length), ct);
                if (now >= from)
                {
                    s.Sent++;
                }
                next += period;
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or SocketException or ObjectDisposedException)
        {
            s.Failed = true;
        }
    }

    private static async Task ReadLoopAsync(Session s, CancellationToken ct)
    {
        try
        {
            while (true)
            {
                var length = s.Process();
                if (length > 0)
                {
                    await s.C.SendLockedAsync(s.Out(length), ct);
                }
                if (s.Closed || !await s.C.FillAsync(ct))
                {
                    return;
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or SocketException or InvalidDataException or ObjectDisposedException)
        {
            if (!s.Closed)
            {
                s.Failed = true;
            }
        }
    }

    /// <summary>Close frames out, then each reader sees the server's close and end of stream (bounded), then dispose.</summary>
    private static async Task CloseWithReadersAsync(List<Session> sessions, Task[] readers)
    {
        var pairs = sessions.Select((s, i) => (s, reader: readers[i])).ToList();
        await ForEachAsync(pairs, 1000, async pair =>
        {
            try
            {
                using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(3));
                if (!pair.s.Failed)
                {
                    await pair.s.C.SendCloseAsync(timeout.Token);
                    await pair.reader.WaitAsync(timeout.Token);
                }
            }
            catch (Exception ex) when (ex is OperationCanceledException or TimeoutException or IOException or SocketException or ObjectDisposedException)
            {
            }
            finally
            {
                pair.s.C.Dispose();
            }
        });
        await Task.WhenAll(readers).WaitAsync(TimeSpan.FromSeconds(5)).ContinueWith(_ => { });
    }

    // ---- idle: N connections opened in a burst, held idle, then one echo each ----

    public static async Task<Dictionary<string, object>> IdleAsync(Options o)
    {
        var target = o.GetTarget();
        var n = o.GetInt("conns", 9000);
        var size = Math.Max(8, o.GetInt("size", 64));
        var duration = o.GetDouble("duration", 20);
        var pids = o.GetPids();
        using var hard = HardStop(o, duration + 60);

        var rssBefore = Sample.Rss(pids);
        var connectStart = Sample.Take(pids);
        var opened = await OpenAsync(target, n, o.GetInt("concurrency", o.GetInt("connect-concurrency", 1000)), 2 * 1024, lockWrites: true, hard.Token);
        var connectEnd = Sample.Take(pids);
        var sessions = opened.Connections.Select(c => new Session(c, size)).ToList();
        var readers = sessions.Select(s => Task.Run(() => ReadLoopAsync(s, hard.Token))).ToArray();
        await Task.Delay(500);
        var rssConnected = Sample.Rss(pids);

        var hold0 = Sample.Take(pids);
        await Task.Delay(TimeSpan.FromSeconds(duration), hard.Token);
        var hold1 = Sample.Take(pids);
        var rssHeld = Sample.Rss(pids);
        var alive = sessions.Count(s => !s.Failed && !s.Closed);

        // One echo each, then wait (at most 15 s) for all of them.
        var echoStart = Stopwatch.GetTimestamp();
        foreach (var s in sessions)
        {
            s.From = echoStart;
        }
        await ForEachAsync(sessions, 1000, async s =>
        {
            if (s.Failed || s.Closed)
            {
                return;
            }
            var frame = new byte[size + 14];
            var payload = new byte[size];
            WsConnection.StampPayload(payload, Stopwatch.GetTimestamp());
            try
            {
                await s.C.SendLockedAsync(frame.AsMemory(0, s.C.WriteFrame(frame, 0x2, payload)), hard.Token);
            }
            catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
            {
                s.Failed = true;
            }
        });
        var echoDeadline = Stopwatch.GetTimestamp() + 15 * Frequency;
        while (sessions.Count(s => s.C.Received > 0) < alive && Stopwatch.GetTimestamp() < echoDeadline)
        {
            await Task.Delay(20);
        }
        var echoed = sessions.Count(s => s.C.Received > 0);

        var ok = Math.Max(1, opened.Connections.Count);
        var result = new Dictionary<string, object>();
        AddOpen(result, opened, n);
        result["hold_s"] = duration;
        result["connect_per_s"] = Math.Round(opened.Connections.Count / opened.Seconds);
        Stats.AddLatencies(result, "hs_", opened.HandshakeMicros);
        result["connect_lg_cpu_pct"] = opened.OwnCpuPercent;
        result["connect_target_cpu_pct"] = Sample.TargetCpuPercent(connectStart, connectEnd);
        result["rss_before_mb"] = Math.Round(rssBefore / 1048576.0, 1);
        result["rss_held_mb"] = Math.Round(rssHeld / 1048576.0, 1);
        result["kb_per_conn_connected"] = Math.Round((rssConnected - rssBefore) / 1024.0 / ok, 2);
        result["kb_per_conn"] = Math.Round((rssHeld - rssBefore) / 1024.0 / ok, 2);
        result["hold_target_cpu_pct"] = Sample.TargetCpuPercent(hold0, hold1);
        result["lg_cpu_pct"] = Sample.OwnCpuPercent(hold0, hold1);
        result["pings_answered"] = sessions.Sum(s => s.C.PingsAnswered);
        result["alive_after_hold"] = alive;
        result["echo_ok"] = echoed;
        Stats.AddLatencies(result, "echo_", AllLatencies(opened.Connections));
        result["errors"] = sessions.Count(s => s.Failed) + opened.Failures;

        await CloseWithReadersAsync(sessions, readers);
        return result;
    }

    // ---- tls-connect: new connections per second (full TLS handshake, one echo, close) ----

    public static async Task<Dictionary<string, object>> TlsConnectAsync(Options o)
    {
        var target = o.GetTarget();
        var duration = o.GetDouble("duration", 20);
        var concurrency = o.GetInt("concurrency", 16);
        var size = Math.Max(8, o.GetInt("size", 64));
        var pids = o.GetPids();
        using var hard = HardStop(o, duration);

        var handshakes = new List<int>[concurrency];
        var totals = new List<int>[concurrency];
        var ok = 0;
        var failures = 0;
        string? firstError = null;
        var s0 = Sample.Take(pids);
        var end = s0.Timestamp + (long)(duration * Frequency);
        var workers = new Task[concurrency];
        for (var w = 0; w < concurrency; w++)
        {
            var hs = handshakes[w] = new List<int>();
            var total = totals[w] = new List<int>();
            workers[w] = Task.Run(async () =>
            {
                while (Stopwatch.GetTimestamp() < end && !hard.IsCancellationRequested)
                {
                    var started = Stopwatch.GetTimestamp();
                    WsConnection? c = null;
                    try
                    {
                        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(hard.Token);
                        timeout.CancelAfter(TimeSpan.FromSeconds(10));
                        c = await WsConnection.ConnectAsync(target, 4096, lockWrites: false, timeout.Token);
                        var connected = Stopwatch.GetTimestamp();
                        var s = new Session(c, size);
                        await c.SendRawAsync(s.Out(s.AppendMessage(0, connected)), timeout.Token);
                        s.Outstanding = 1;
                        while (s.Outstanding > 0)
                        {
                            var length = s.Process();
                            if (length > 0)
                            {
                                await c.SendRawAsync(s.Out(length), timeout.Token);
                            }
                            if (s.Outstanding > 0 && (s.Closed || !await c.FillAsync(timeout.Token)))
                            {
                                throw new IOException("closed before the echo");
                            }
                        }
                        await c.CloseAsync(TimeSpan.FromSeconds(2));
                        c = null;
                        var done = Stopwatch.GetTimestamp();
                        hs.Add(WsConnection.ToMicros(connected - started));
                        total.Add(WsConnection.ToMicros(done - started));
                        Interlocked.Increment(ref ok);
                    }
                    catch (Exception ex)
                    {
                        Interlocked.Increment(ref failures);
                        Interlocked.CompareExchange(ref firstError, $"{ex.GetType().Name}: {ex.Message}", null);
                        c?.Dispose();
                        if (failures > 100)
                        {
                            await Task.Delay(10); // a refusing target must not turn this into a busy loop
                        }
                    }
                }
            });
        }
        await Task.WhenAll(workers);
        var s1 = Sample.Take(pids);

        var result = new Dictionary<string, object>();
        result["concurrency"] = concurrency;
        result["duration_s"] = duration;
        result["conns_per_s"] = Math.Round(ok / Sample.Seconds(s0, s1), 1);
        Stats.AddLatencies(result, "hs_", handshakes.SelectMany(h => h).ToList());
        Stats.AddLatencies(result, "cycle_", totals.SelectMany(h => h).ToList());
        result["target_cpu_pct"] = Sample.TargetCpuPercent(s0, s1);
        result["target_cpu_ms_per_conn"] = Math.Round((s1.TargetCpuSeconds - s0.TargetCpuSeconds) * 1000 / Math.Max(1, ok), 3);
        result["lg_cpu_pct"] = Sample.OwnCpuPercent(s0, s1);
        result["lg_cpu_ms_per_conn"] = Math.Round((s1.OwnCpu - s0.OwnCpu).TotalMilliseconds / Math.Max(1, ok), 3);
        result["errors"] = failures;
        if (firstError is not null)
        {
            result["first_error"] = firstError;
        }
        return result;
    }
}
