using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace LoadGen;

/// <summary>
/// `LoadGen distinct` (bench/distinct-clients.sh, issue 24): N short-lived clients, each from its own loopback source
/// address (127.1.0.1 upwards), at most --concurrency at once. Each connects, sends --messages small binary messages one
/// at a time and checks each echo, then closes cleanly (Close 1000, waits for the server's Close and its end of stream).
/// Every client ends in one outcome (served, or why not), counted by kind. Every --mark-every clients the run stops
/// starting new ones, lets those in flight finish and, with --mark-file, writes the count there and waits for
/// --mark-go-file, so the script samples the gateway with no client open.
/// </summary>
public static class DistinctScenario
{
    private static readonly long Frequency = Stopwatch.Frequency;

    public static async Task<Dictionary<string, object>> RunAsync(Options o)
    {
        var target = o.GetTarget();
        var clients = o.GetInt("clients", 100_000);
        var concurrency = Math.Max(1, o.GetInt("concurrency", 200));
        var messages = Math.Max(0, o.GetInt("messages", 3));
        var size = Math.Max(DistinctClient.HeaderSize, o.GetInt("size", 32));
        var markEvery = o.GetInt("mark-every", 10_000) is var m and > 0 ? m : clients;
        var markFile = o.Get("mark-file", "");
        var markGoFile = o.Get("mark-go-file", "");
        // Clients started per second (0: as fast as the slots free up). Paced, a run spans longer than an entry outlives
        // its client, so the gateway's tables reach their steady size instead of only growing.
        var rate = o.GetDouble("rate", 0);
        var sources = new SourceRange(IPAddress.Parse(o.Get("first-source", "127.1.0.1")), clients);
        var pids = o.GetPids();
        using var hard = new CancellationTokenSource(TimeSpan.FromSeconds(o.GetDouble("max-seconds", 1200)));
        var run = new DistinctRun { Messages = messages, Size = size, Hard = hard.Token };

        Console.Error.WriteLine($"distinct: {clients} clients from {sources.At(0)} to {sources.At(clients - 1)}, {concurrency} at once" +
            (rate > 0 ? string.Create(CultureInfo.InvariantCulture, $", {rate} started per second, ") : ", ") +
            $"{messages} x {size} B each, a mark every {markEvery}");
        var started = Stopwatch.GetTimestamp();
        var s0 = Sample.Take(pids);
        var last = s0;
        var lastDone = 0;
        var next = 0;
        while (next < clients && !hard.IsCancellationRequested)
        {
            // One batch up to the next mark; the workers take clients in order, so addresses are used once each.
            var end = Math.Min(clients, (next / markEvery + 1) * markEvery);
            var cursor = next - 1;
            // The schedule restarts after each pause: client i is due at base + i / rate.
            var interval = rate > 0 ? Frequency / rate : 0;
            var batchStart = Stopwatch.GetTimestamp();
            var batchFirst = next;
            var workers = new Task[Math.Min(concurrency, end - next)];
            for (var w = 0; w < workers.Length; w++)
            {
                workers[w] = Task.Run(async () =>
                {
                    int i;
                    while ((i = Interlocked.Increment(ref cursor)) < end && !hard.IsCancellationRequested)
                    {
                        var wait = batchStart + (long)((i - batchFirst) * interval) - Stopwatch.GetTimestamp();
                        if (wait > 0)
                        {
                            try
                            {
                                await Task.Delay(TimeSpan.FromSeconds(wait / (double)Frequency), hard.Token);
                            }
                            catch (OperationCanceledException)
                            {
                                break;
                            }
                        }
                        await new DistinctClient(run, target, sources.At(i)).RunAsync();
                    }
                });
            }
            await Task.WhenAll(workers);
            next = end;

            var now = Sample.Take(pids);
            var done = (int)Interlocked.Read(ref run.Done);
            var gatewayCpu = pids.Length > 0 ? string.Create(CultureInfo.InvariantCulture, $" gateway_cpu={Sample.TargetCpuPercent(last, now):0}%") : "";
            Console.Error.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"distinct: {done} done ({run.Served} served, {done - run.Served} not) at {Elapsed(started):0.0} s, " +
                $"{(done - lastDone) / Sample.Seconds(last, now):0} clients/s, lg_cpu={Sample.OwnCpuPercent(last, now):0}%{gatewayCpu}"));
            last = now;
            lastDone = done;
            if (markFile.Length > 0 && !hard.IsCancellationRequested)
            {
                await MarkAsync(markFile, markGoFile, done, hard.Token);
            }
        }
        var s1 = Sample.Take(pids);

        var result = run.Result();
        result["clients"] = clients;
        result["concurrency"] = concurrency;
        result["rate"] = rate;
        result["messages_per_client"] = messages;
        result["size"] = size;
        result["first_source"] = sources.At(0).ToString();
        result["last_source"] = sources.At(clients - 1).ToString();
        result["timed_out"] = hard.IsCancellationRequested;
        result["seconds"] = Math.Round(Elapsed(started), 1);
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

    /// <summary>Tells the script how many clients are done (written whole, then renamed) and waits for its go (60 s at most).</summary>
    private static async Task MarkAsync(string markFile, string goFile, int done, CancellationToken ct)
    {
        if (goFile.Length > 0)
        {
            File.Delete(goFile);
        }
        File.WriteAllText(markFile + ".tmp", done.ToString(CultureInfo.InvariantCulture));
        File.Move(markFile + ".tmp", markFile, overwrite: true);
        var until = Stopwatch.GetTimestamp() + 60 * Frequency;
        while (goFile.Length > 0 && !File.Exists(goFile) && Stopwatch.GetTimestamp() < until && !ct.IsCancellationRequested)
        {
            await Task.Delay(50, CancellationToken.None);
        }
    }

    private static double Elapsed(long since) => (Stopwatch.GetTimestamp() - since) / (double)Frequency;
}

/// <summary>
/// Client i's source address: the i-th address from the first one, skipping each /24's .0 and .255 (not every stack
/// takes them as a host's address). Stays inside 127.0.0.0/8 and above 127.0.0.255, which other runs use.
/// </summary>
internal sealed class SourceRange
{
    private readonly long _first;

    public SourceRange(IPAddress first, int count)
    {
        var bytes = first.GetAddressBytes();
        if (bytes.Length != 4 || bytes[0] != 127 || (bytes[1] == 0 && bytes[2] == 0) || bytes[3] is 0 or 255)
        {
            throw new ArgumentException($"--first-source must be an IPv4 loopback address above 127.0.0.255 ending in 1-254, got {first}");
        }
        var value = BinaryPrimitives.ReadUInt32BigEndian(bytes);
        _first = (value >> 8) * 254 + (value & 0xFF) - 1;
        if (count > 0 && At(count - 1).GetAddressBytes()[0] != 127)
        {
            throw new ArgumentException($"{count} clients from {first} run past 127.255.255.254");
        }
    }

    public IPAddress At(int i)
    {
        var linear = _first + Math.Max(0, i);
        var value = (uint)((linear / 254) << 8 | (linear % 254 + 1));
        var bytes = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(bytes, value);
        return new IPAddress(bytes);
    }
}

/// <summary>The run's settings and counters, shared by every client.</summary>
internal sealed class DistinctRun
{
    public int Messages;
    public int Size;
    public CancellationToken Hard;

    public long Done;
    public long Served;
    public long EchoesOk;
    public readonly ConcurrentDictionary<string, long> Outcomes = new();
    private readonly long[] _handshake = new long[100_001]; // 0.1 ms buckets up to 10 s
    private readonly long[] _lifetime = new long[100_001];

    public void Finish(string outcome, bool served)
    {
        Outcomes.AddOrUpdate(outcome, 1, static (_, v) => v + 1);
        if (served)
        {
            Interlocked.Increment(ref Served);
        }
        Interlocked.Increment(ref Done);
    }

    public void Handshake(long ticks) => Add(_handshake, ticks);

    public void Lifetime(long ticks) => Add(_lifetime, ticks);

    private static void Add(long[] buckets, long ticks) =>
        Interlocked.Increment(ref buckets[Math.Clamp(ticks * 10_000 / Stopwatch.Frequency, 0, buckets.Length - 1)]);

    public Dictionary<string, object> Result() => new()
    {
        ["done"] = Done,
        ["served"] = Served,
        ["failed"] = Done - Served,
        ["echoes_ok"] = EchoesOk,
        ["outcomes"] = string.Join(", ", Outcomes.OrderByDescending(kv => kv.Value).Select(kv => $"{kv.Key}: {kv.Value}")),
        ["handshake_p50_ms"] = TenthMsBuckets.PercentileMs(_handshake, 50),
        ["handshake_p99_ms"] = TenthMsBuckets.PercentileMs(_handshake, 99),
        ["client_p50_ms"] = TenthMsBuckets.PercentileMs(_lifetime, 50),
        ["client_p99_ms"] = TenthMsBuckets.PercentileMs(_lifetime, 99),
        ["client_max_ms"] = TenthMsBuckets.PercentileMs(_lifetime, 100),
    };

    public string Markdown(Dictionary<string, object> r)
    {
        var md = new StringBuilder();
        md.AppendLine("| clients | served | not served | echoes ok | clients/s | handshake p50 / p99 ms | client p50 / p99 / max ms | LoadGen CPU % | gateway CPU % |");
        md.AppendLine("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
        var seconds = Convert.ToDouble(r["seconds"], CultureInfo.InvariantCulture);
        md.AppendLine(string.Create(CultureInfo.InvariantCulture,
            $"| {Done} of {r["clients"]} | {Served} | **{Done - Served}** | {EchoesOk} | {(seconds > 0 ? Done / seconds : 0):0} | " +
            $"{r["handshake_p50_ms"]} / {r["handshake_p99_ms"]} | {r["client_p50_ms"]} / {r["client_p99_ms"]} / {r["client_max_ms"]} | " +
            $"{r["lg_cpu_pct"]} | {r.GetValueOrDefault("target_cpu_pct", "?")} |"));
        md.AppendLine();
        md.AppendLine("| how clients ended | count |");
        md.AppendLine("| --- | --- |");
        foreach (var (key, value) in Outcomes.OrderByDescending(kv => kv.Value))
        {
            md.AppendLine(CultureInfo.InvariantCulture, $"| {key} | {value} |");
        }
        return md.ToString();
    }
}

/// <summary>One client: connect from its own address, send and check the echoes one by one, close, record how it went.</summary>
internal sealed class DistinctClient(DistinctRun run, Target gateway, IPAddress source)
{
    // Payload: the client's source address (4), the message's number (4), then a pattern from both: a crossed or
    // altered echo is seen.
    public const int HeaderSize = 8;

    // A whole client (connect, echoes, close) gets this long.
    private static readonly TimeSpan ClientTimeout = TimeSpan.FromSeconds(15);

    public async Task RunAsync()
    {
        var started = Stopwatch.GetTimestamp();
        var target = new Target { Address = gateway.Address, Port = gateway.Port, Path = gateway.Path, Sources = [source] };
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(run.Hard);
        timeout.CancelAfter(ClientTimeout);
        WsConnection c;
        try
        {
            c = await WsConnection.ConnectAsync(target, 1024, lockWrites: false, timeout.Token);
        }
        catch (Exception ex)
        {
            run.Finish("connect failed: " + Describe(ex, timeout.IsCancellationRequested, run.Hard.IsCancellationRequested), served: false);
            return;
        }
        run.Handshake(Stopwatch.GetTimestamp() - started);
        using (c)
        {
            string outcome;
            var served = false;
            try
            {
                outcome = await ExchangeAsync(c, timeout.Token);
                served = outcome == Served;
            }
            catch (Exception ex)
            {
                outcome = Describe(ex, timeout.IsCancellationRequested, run.Hard.IsCancellationRequested);
            }
            run.Lifetime(Stopwatch.GetTimestamp() - started);
            run.Finish(outcome, served);
        }
    }

    private const string Served = "served: echoes ok, our Close 1000 answered with 1000";

    private async Task<string> ExchangeAsync(WsConnection c, CancellationToken ct)
    {
        var frame = new byte[run.Size + 14];
        var payload = new byte[run.Size];
        var address = BinaryPrimitives.ReadUInt32BigEndian(source.GetAddressBytes());
        for (var n = 0; n < run.Messages; n++)
        {
            Fill(payload, address, n);
            await c.SendRawAsync(frame.AsMemory(0, c.WriteFrame(frame, 0x2, payload)), ct);
            var (opcode, echo) = await NextMessageAsync(c, ct);
            if (opcode == 0x8)
            {
                return $"Close {CloseText(echo)} before echo {n + 1}";
            }
            if (opcode < 0)
            {
                return $"1006 EOF without a Close before echo {n + 1}";
            }
            if (!echo.AsSpan().SequenceEqual(payload))
            {
                return $"bad echo {n + 1}";
            }
            Interlocked.Increment(ref run.EchoesOk);
        }

        // Closing handshake (RFC 6455 §5.5.1, §7.1.2): our Close 1000, then the server's Close, then its end of stream,
        // so the server side closes TCP first.
        var code = new byte[2];
        BinaryPrimitives.WriteUInt16BigEndian(code, 1000);
        await c.SendRawAsync(frame.AsMemory(0, c.WriteFrame(frame, 0x8, code)), ct);
        while (true)
        {
            var (opcode, body) = await NextMessageAsync(c, ct);
            if (opcode < 0)
            {
                return "1006 EOF without a Close after ours";
            }
            if (opcode == 0x8)
            {
                var answer = CloseText(body);
                while (await c.FillAsync(ct))
                {
                    while (c.TryReadFrame(out _, out _))
                    {
                    }
                }
                return answer.StartsWith("1000", StringComparison.Ordinal) ? Served : $"our Close answered with {answer}";
            }
            // A data frame here is an echo we did not ask for: not served.
            return "unexpected message after our Close";
        }
    }

    /// <summary>The next data or Close frame (its opcode and a copy of its payload), answering pings; opcode -1 at end of stream.</summary>
    private static async Task<(int Opcode, byte[] Payload)> NextMessageAsync(WsConnection c, CancellationToken ct)
    {
        while (true)
        {
            while (c.TryReadFrame(out var opcode, out var payload))
            {
                if (opcode == 0x9)
                {
                    var pong = new byte[payload.Length + 14];
                    var length = c.WriteFrame(pong, 0xA, payload);
                    await c.SendRawAsync(pong.AsMemory(0, length), ct);
                    continue;
                }
                if (opcode == 0xA)
                {
                    continue;
                }
                return (opcode, payload.ToArray());
            }
            if (!await c.FillAsync(ct))
            {
                return (-1, []);
            }
        }
    }

    private static void Fill(byte[] payload, uint address, int n)
    {
        BinaryPrimitives.WriteUInt32BigEndian(payload, address);
        BinaryPrimitives.WriteInt32BigEndian(payload.AsSpan(4), n);
        for (var i = HeaderSize; i < payload.Length; i++)
        {
            payload[i] = (byte)(address * 31 + (uint)n * 7 + (uint)i);
        }
    }

    private static string CloseText(byte[] body) => body.Length >= 2
        ? $"{BinaryPrimitives.ReadUInt16BigEndian(body)}{(body.Length > 2 ? " " + Encoding.UTF8.GetString(body, 2, body.Length - 2) : "")}"
        : "(no code)";

    private static string Describe(Exception ex, bool timedOut, bool runOver) => ex switch
    {
        OperationCanceledException when runOver => "cut by --max-seconds",
        OperationCanceledException when timedOut => "timeout (15 s)",
        SocketException s => $"socket {s.SocketErrorCode}",
        IOException { InnerException: SocketException s } => $"socket {s.SocketErrorCode}",
        IOException io when io.Message.StartsWith("handshake refused: ", StringComparison.Ordinal) => io.Message["handshake refused: ".Length..],
        _ => $"{ex.GetType().Name}: {ex.Message}",
    };
}
