using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using CsCheck;
using Gateway.Tests.Handshake;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Xunit.Abstractions;

namespace Gateway.Tests.Listeners.LeanHttp1.Fuzz;

/// <summary>
/// Generated request heads (mutations of a valid upgrade, <see cref="FuzzCases"/>) go to a gateway with the lean HTTP/1.1
/// path and to one without it; the status lines the client gets and the exact bytes that reach the backend must be the
/// same. Every case that ever differed is kept in corpus/differences.txt and replayed first.
/// </summary>
/// <remarks>
/// <c>GATEWAY_FUZZ_CASES</c> sets the number of generated cases (default <see cref="DefaultCases"/>) and
/// <c>GATEWAY_FUZZ_SEED</c> the seed (a number; default fixed, so a run is repeatable). A difference found is printed
/// as a corpus line, to be appended to the corpus with the fix.
/// </remarks>
[Collection(SerialCollection.Name)]
public sealed class DifferentialFuzzTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const int DefaultCases = 2000;
    private const ulong DefaultSeed = 20261206;
    private const int Workers = 4;
    private const int LeanHandshakeEvent = 172;

    private readonly CapturingLoggerProvider _leanLogs = new();
    private FuzzBackend _backend = null!;
    private GatewayServer _lean = null!;
    private GatewayServer _kestrel = null!;
    private int _ids;

    public async Task InitializeAsync()
    {
        _backend = new FuzzBackend();
        var proxy = new JsonObject
        {
            ["Routes"] = new JsonObject
            {
                ["echo"] = new JsonObject { ["ClusterId"] = "echo", ["Match"] = new JsonObject { ["Path"] = "/echo/{**rest}" } },
            },
            ["Clusters"] = new JsonObject
            {
                ["echo"] = new JsonObject
                {
                    ["Destinations"] = new JsonObject { ["d1"] = new JsonObject { ["Address"] = _backend.Address.ToString() } },
                },
            },
        };
        var config = GatewayServer.Config(proxy);
        config["Logging"]!["LogLevel"]!["Gateway.Listeners.LeanHttp1"] = "Debug";
        _lean = await GatewayServer.StartAsync(config, services => services.AddSingleton<ILoggerProvider>(_leanLogs));
        var off = (JsonObject)config.DeepClone();
        off["Gateway"]!["LeanUpgrades"] = false;
        _kestrel = await GatewayServer.StartAsync(off);
    }

    public async Task DisposeAsync()
    {
        await _lean.DisposeAsync();
        await _kestrel.DisposeAsync();
        await _backend.DisposeAsync();
    }

    [Fact]
    public async Task Every_corpus_case_gets_the_same_answer_and_backend_bytes_on_either_path()
    {
        var cases = Corpus().ToList();
        Assert.NotEmpty(cases);
        var (differences, lean) = await RunAsync(cases);
        Assert.True(differences.Count == 0, Report(differences, cases.Count));
        // The corpus holds heads the lean path took before it was fixed: some of them it still takes.
        Assert.True(lean > 0, "the lean path served no corpus case");
    }

    [Fact]
    public async Task Generated_heads_get_the_same_answer_and_backend_bytes_on_either_path()
    {
        var count = int.TryParse(Environment.GetEnvironmentVariable("GATEWAY_FUZZ_CASES"), out var n) && n > 0 ? n : DefaultCases;
        var seed = ulong.TryParse(Environment.GetEnvironmentVariable("GATEWAY_FUZZ_SEED"), out var s) ? s : DefaultSeed;
        var pcg = new PCG(22, seed);
        var cases = new List<FuzzCase>(count);
        for (var i = 0; i < count; i++)
        {
            cases.Add(FuzzCases.Gen.Generate(pcg, null!, out _));
        }
        var watch = Stopwatch.StartNew();
        var (differences, lean) = await RunAsync(cases);
        output.WriteLine($"{count} cases (seed {seed}) in {watch.Elapsed.TotalSeconds:F1} s: {lean} served by the lean path, {differences.Count} differences");
        Assert.True(differences.Count == 0, Report(differences, count));
        // The generator starts from a valid upgrade: a good part of the cases must really have taken the lean path.
        Assert.True(lean >= count / 20, $"only {lean} of {count} cases took the lean path");
    }

    private static IEnumerable<FuzzCase> Corpus()
    {
        var path = Path.Combine(AppContext.BaseDirectory, "Listeners", "LeanHttp1", "corpus", "differences.txt");
        foreach (var line in File.ReadLines(path))
        {
            if (!string.IsNullOrWhiteSpace(line) && !line.StartsWith('#'))
            {
                yield return FuzzCase.FromCorpusLine(line);
            }
        }
    }

    private static string Report(IReadOnlyCollection<string> differences, int count) =>
        $"{differences.Count} of {count} cases differ (corpus lines, then what each path did):\n" + string.Join("\n", differences.Take(20));

    private async Task<(List<string> Differences, int Lean)> RunAsync(IReadOnlyList<FuzzCase> cases)
    {
        var differences = new ConcurrentQueue<string>();
        var lean = 0;
        var next = -1;
        var workers = Enumerable.Range(0, Workers).Select(_ => Task.Run(async () =>
        {
            int index;
            while ((index = Interlocked.Increment(ref next)) < cases.Count)
            {
                var fuzz = cases[index];
                var id = $"c{Interlocked.Increment(ref _ids)}";
                var (leanAnswer, leanTook) = await RunOnAsync(_lean, fuzz, id, _leanLogs);
                var leanBytes = _backend.Take(id);
                var (kestrelAnswer, kestrelTook) = await RunOnAsync(_kestrel, fuzz, id, logs: null);
                var kestrelBytes = _backend.Take(id);
                if (leanTook)
                {
                    Interlocked.Increment(ref lean);
                }
                if (!SameAnswers(leanAnswer, kestrelAnswer) || !leanBytes.SequenceEqual(kestrelBytes))
                {
                    differences.Enqueue($"{fuzz.ToCorpusLine()}\n  lean ({(leanTook ? "lean path" : "Kestrel")}): {string.Join(" / ", leanAnswer)} | {Show(leanBytes)}\n  Kestrel: {string.Join(" / ", kestrelAnswer)} | {Show(kestrelBytes)}");
                }
            }
        })).ToArray();
        await Task.WhenAll(workers);
        return (differences.ToList(), lean);
    }

    /// <summary>
    /// Equal, except where one side's connection was reset: a server that closes with bytes of the client's still unread
    /// (a refused head with more behind it) sends a reset, and the client's kernel then drops what it had not read, a
    /// refusal included. Up to the reset the answers must agree, and what the other side got after must be refusals.
    /// </summary>
    private static bool SameAnswers(List<string> lean, List<string> kestrel)
    {
        if (lean.SequenceEqual(kestrel))
        {
            return true;
        }
        var (reset, other) = lean.Contains("(reset)") ? (lean, kestrel) : kestrel.Contains("(reset)") ? (kestrel, lean) : (null, null);
        if (reset is null || other is null)
        {
            return false;
        }
        var before = reset.IndexOf("(reset)");
        return other.Count >= before && other.Take(before).SequenceEqual(reset.Take(before))
            && other.Skip(before).All(answer => answer is "(closed)" or "(reset)" || IsRefusal(answer));
    }

    private static bool IsRefusal(string answer) =>
        answer.Length >= 12 && int.TryParse(answer.AsSpan(9, 3), out var status) && status >= 400;

    private static string Show(List<string> requests) =>
        requests.Count == 0 ? "(nothing reached the backend)" : string.Join(" || ", requests.Select(r => r.Replace("\r\n", "\\r\\n")));

    /// <summary>The case on one gateway: its answers' status lines, and whether the lean path took the connection.</summary>
    private static async Task<(List<string> Answers, bool Lean)> RunOnAsync(GatewayServer gateway, FuzzCase fuzz, string id, CapturingLoggerProvider? logs)
    {
        var bytes = Encoding.Latin1.GetBytes(fuzz.Text.Replace(FuzzCase.IdPlaceholder, id, StringComparison.Ordinal));
        // The cuts were placed in the text with the placeholder; the id is as long or longer, so they stay inside.
        using var tcp = new TcpClient { NoDelay = true };
        var address = fuzz.Tls ? gateway.Wss : gateway.Ws;
        await tcp.ConnectAsync(address.Host, address.Port);
        // The client's port names the connection in the lean path's log line ("from 127.0.0.1:PORT took ...").
        var local = $":{((System.Net.IPEndPoint)tcp.Client.LocalEndPoint!).Port} ";
        Stream stream = tcp.GetStream();
        var answers = new List<string>();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        try
        {
            if (fuzz.Tls)
            {
                // The gateway's own self-signed certificate (none is configured); HTTP/1.1, as a browser's WebSocket asks.
                var tls = new System.Net.Security.SslStream(stream, leaveInnerStreamOpen: false, (_, _, _, _) => true);
                await tls.AuthenticateAsClientAsync(new System.Net.Security.SslClientAuthenticationOptions
                {
                    TargetHost = "localhost",
                    ApplicationProtocols = [System.Net.Security.SslApplicationProtocol.Http11],
                }, timeout.Token);
                stream = tls;
            }
            var at = 0;
            foreach (var cut in fuzz.Cuts.Append(bytes.Length))
            {
                var end = Math.Min(cut, bytes.Length);
                if (end > at)
                {
                    await stream.WriteAsync(bytes.AsMemory(at, end - at), timeout.Token);
                    at = end;
                    if (end < bytes.Length)
                    {
                        await Task.Delay(15, timeout.Token);
                    }
                }
            }
            while (answers.Count < fuzz.Requests)
            {
                var status = await ReadAnswerAsync(stream, timeout.Token);
                answers.Add(status);
                if (status.StartsWith("HTTP/1.1 101", StringComparison.Ordinal) || status == "(closed)")
                {
                    break;
                }
            }
        }
        catch (OperationCanceledException)
        {
            answers.Add("(no answer)");
        }
        catch (Exception ex) when (ex is IOException or SocketException)
        {
            answers.Add("(reset)");
        }
        var lean = logs is not null && logs.Lines.Any(line => line.Id.Id == LeanHandshakeEvent && line.Message.Contains(local, StringComparison.Ordinal));
        return (answers, lean);
    }

    /// <summary>One answer's status line, its body read (Content-Length or chunked); "(closed)" at the connection's end.</summary>
    private static async Task<string> ReadAnswerAsync(Stream stream, CancellationToken cancellationToken)
    {
        string head;
        try
        {
            head = await RawFrames.ReadHeadAsync(stream, cancellationToken);
        }
        catch (EndOfStreamException)
        {
            return "(closed)";
        }
        var lines = head.Split("\r\n");
        string? Header(string name) => lines.Skip(1).FirstOrDefault(line => line.StartsWith(name + ":", StringComparison.OrdinalIgnoreCase))?[(name.Length + 1)..].Trim();
        // The status line and the header fields (but the date), in a fixed order: their order on the wire means nothing.
        var answer = string.Join(" ; ", lines.Take(1).Concat(lines.Skip(1)
            .Where(line => line.Length > 0 && !line.StartsWith("Date:", StringComparison.OrdinalIgnoreCase)
                && !line.StartsWith("Sec-WebSocket-Accept:", StringComparison.OrdinalIgnoreCase))
            .Select(line => MaskCookie(line.ToLowerInvariant())).Order(StringComparer.Ordinal)));
        if (lines[0].StartsWith("HTTP/1.1 1", StringComparison.Ordinal))
        {
            return answer;
        }
        if (Header("Content-Length") is { } length)
        {
            await stream.ReadExactlyAsync(new byte[int.Parse(length, System.Globalization.CultureInfo.InvariantCulture)], cancellationToken);
        }
        else if (Header("Transfer-Encoding") is not null)
        {
            while (true)
            {
                var size = Convert.ToInt32((await ReadLineAsync(stream, cancellationToken)).Split(';')[0].Trim(), 16);
                if (size == 0)
                {
                    while ((await ReadLineAsync(stream, cancellationToken)).Length > 0)
                    {
                    }
                    break;
                }
                await stream.ReadExactlyAsync(new byte[size + 2], cancellationToken);
            }
        }
        return answer;
    }

    /// <summary>An affinity cookie is sealed with each gateway's own key ring: its name and attributes are compared, not its value.</summary>
    private static string MaskCookie(string line)
    {
        var equals = line.IndexOf('=');
        if (!line.StartsWith("set-cookie:", StringComparison.Ordinal) || equals < 0)
        {
            return line;
        }
        var end = line.IndexOf(';', equals);
        return line[..(equals + 1)] + "*" + (end < 0 ? "" : line[end..]);
    }

    private static async Task<string> ReadLineAsync(Stream stream, CancellationToken cancellationToken)
    {
        var line = new StringBuilder();
        var one = new byte[1];
        while (true)
        {
            await stream.ReadExactlyAsync(one, cancellationToken);
            if (one[0] == '\n')
            {
                return line.ToString().TrimEnd('\r');
            }
            line.Append((char)one[0]);
        }
    }
}
