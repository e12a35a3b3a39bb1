using System.Diagnostics;
using System.Net;
using System.Net.Http;
using System.Net.Security;
using System.Net.Sockets;
using System.Net.WebSockets;

namespace LoadGen;

/// <summary>
/// idle-h2: the idle scenario with WebSockets over HTTP/2 (RFC 8441 extended CONNECT): N tunnels opened in a burst
/// as streams of a few TLS connections (ALPN h2), held idle (ClientWebSocket answers the server's pings), then one
/// echo each. KB/tunnel = target RSS delta / tunnels, as idle's KB/conn.
/// </summary>
public static class H2IdleScenario
{
    // Linux IP_BIND_ADDRESS_NO_PORT, as WsConnection: bind the source address now, the port at connect().
    private const int SolIp = 0;
    private const int IpBindAddressNoPort = 24;

    public static async Task<Dictionary<string, object>> RunAsync(Options o)
    {
        var target = o.GetTarget();
        if (!target.Tls)
        {
            throw new ArgumentException("idle-h2 needs a wss:// --url (HTTP/2 over TLS with ALPN h2)");
        }
        var uri = new Uri(o.Get("url", ""));
        var n = o.GetInt("conns", 9000);
        var streamsPerConn = o.GetInt("streams-per-conn", 100);
        var size = Math.Max(8, o.GetInt("size", 64));
        var duration = o.GetDouble("duration", 20);
        var concurrency = o.GetInt("concurrency", o.GetInt("connect-concurrency", 1000));
        var pids = o.GetPids();
        using var hard = new CancellationTokenSource(TimeSpan.FromSeconds(o.GetDouble("max-seconds", duration + 180)));

        // SocketsHttpHandler fills a connection up to the server's SETTINGS_MAX_CONCURRENT_STREAMS before it opens the
        // next one, and cannot be told to stop earlier: the server's limit must be the streams per connection asked for.
        var probe = await H2SettingsProbe.RunAsync(target, hard.Token);
        if (!probe.CanTunnel)
        {
            throw new InvalidOperationException($"{uri} cannot carry WebSockets over HTTP/2 (RFC 8441): {probe.Describe()}");
        }
        if (probe.MaxStreams != streamsPerConn)
        {
            throw new InvalidOperationException(
                $"{uri} allows {(probe.MaxStreams < 0 ? "unlimited" : probe.MaxStreams)} streams per connection, not --streams-per-conn {streamsPerConn}");
        }

        var h2Connections = 0;
        using var invoker = new HttpMessageInvoker(Handler(target, () => Interlocked.Increment(ref h2Connections)));
        var rssBefore = Sample.Rss(pids);
        var connectStart = Sample.Take(pids);
        var opened = await OpenAsync(uri, invoker, n, size, concurrency, hard.Token);
        var connectEnd = Sample.Take(pids);
        var tunnels = opened.Tunnels;
        await Task.Delay(500);
        var rssConnected = Sample.Rss(pids);

        var hold0 = Sample.Take(pids);
        await Task.Delay(TimeSpan.FromSeconds(duration), hard.Token);
        var hold1 = Sample.Take(pids);
        var rssHeld = Sample.Rss(pids);
        var alive = tunnels.Count(t => !t.Failed && !t.Closed);
        var lgRssHeld = Environment.WorkingSet;

        // One echo each, then wait (at most 15 s) for all of them.
        var echoStart = Stopwatch.GetTimestamp();
        foreach (var t in tunnels)
        {
            t.From = echoStart;
        }
        await Scenarios.ForEachAsync(tunnels, 1000, t => t.Failed || t.Closed ? Task.CompletedTask : t.SendStampedAsync(new byte[size], hard.Token));
        var echoDeadline = Stopwatch.GetTimestamp() + 15 * Stopwatch.Frequency;
        while (tunnels.Count(t => t.Received > 0) < alive && Stopwatch.GetTimestamp() < echoDeadline)
        {
            await Task.Delay(20);
        }
        var echoed = tunnels.Count(t => t.Received > 0);

        var ok = Math.Max(1, tunnels.Count);
        var expectedConnections = (tunnels.Count + streamsPerConn - 1) / streamsPerConn;
        if (h2Connections != expectedConnections)
        {
            Console.Error.WriteLine($"loadgen: {tunnels.Count} tunnels took {h2Connections} HTTP/2 connections, not {expectedConnections}");
        }
        var result = new Dictionary<string, object>();
        result["conns"] = tunnels.Count;
        result["conn_failures"] = opened.Failures;
        if (opened.FirstError is { } error)
        {
            result["first_error"] = error;
        }
        result["streams_per_conn"] = streamsPerConn;
        result["server_max_streams"] = probe.MaxStreams;
        result["h2_conns"] = h2Connections;
        result["hold_s"] = duration;
        result["connect_per_s"] = Math.Round(tunnels.Count / opened.Seconds);
        Stats.AddLatencies(result, "hs_", opened.HandshakeMicros);
        result["connect_lg_cpu_pct"] = Sample.OwnCpuPercent(connectStart, connectEnd);
        result["connect_target_cpu_pct"] = Sample.TargetCpuPercent(connectStart, connectEnd);
        result["rss_before_mb"] = Math.Round(rssBefore / 1048576.0, 1);
        result["rss_held_mb"] = Math.Round(rssHeld / 1048576.0, 1);
        result["kb_per_conn_connected"] = Math.Round((rssConnected - rssBefore) / 1024.0 / ok, 2);
        result["kb_per_conn"] = Math.Round((rssHeld - rssBefore) / 1024.0 / ok, 2);
        result["hold_target_cpu_pct"] = Sample.TargetCpuPercent(hold0, hold1);
        result["lg_cpu_pct"] = Sample.OwnCpuPercent(hold0, hold1);
        result["lg_rss_held_mb"] = Math.Round(lgRssHeld / 1048576.0, 1);
        result["alive_after_hold"] = alive;
        result["echo_ok"] = echoed;
        var latencies = new List<int>();
        foreach (var t in tunnels)
        {
            t.Latencies.CopyTo(latencies);
        }
        Stats.AddLatencies(result, "echo_", latencies);
        result["errors"] = tunnels.Count(t => t.Failed) + opened.Failures;

        await Scenarios.ForEachAsync(tunnels, 1000, t => t.CloseAsync(TimeSpan.FromSeconds(3)));
        return result;
    }

    /// <summary>
    /// One handler for all tunnels: HTTP/2 only, several connections allowed (a new one when the open ones have no
    /// stream left), the bench certificate as the only trusted root, source addresses spread as WsConnection does.
    /// </summary>
    private static SocketsHttpHandler Handler(Target target, Action connected)
    {
        var ssl = target.ClientOptions();
        ssl.ApplicationProtocols = [SslApplicationProtocol.Http2];
        return new SocketsHttpHandler
        {
            EnableMultipleHttp2Connections = true,
            SslOptions = ssl,
            ConnectTimeout = TimeSpan.FromSeconds(15),
            UseProxy = false,
            ConnectCallback = async (context, ct) =>
            {
                var socket = new Socket(target.Address.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                try
                {
                    if (target.NextSource() is { } source)
                    {
                        socket.SetRawSocketOption(SolIp, IpBindAddressNoPort, BitConverter.GetBytes(1));
                        socket.Bind(new IPEndPoint(source, 0));
                    }
                    await socket.ConnectAsync(new IPEndPoint(target.Address, target.Port), ct);
                    connected();
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            },
        };
    }

    private sealed record Opened(List<H2Tunnel> Tunnels, List<int> HandshakeMicros, int Failures, string? FirstError, double Seconds);

    /// <summary>Opens `count` tunnels with at most `concurrency` in flight; each is bounded to 15 s and starts reading at once.</summary>
    private static async Task<Opened> OpenAsync(Uri uri, HttpMessageInvoker invoker, int count, int size, int concurrency, CancellationToken ct)
    {
        var tunnels = new H2Tunnel?[count];
        var handshakes = new int[count];
        var next = -1;
        var failures = 0;
        string? firstError = null;
        var started = Stopwatch.GetTimestamp();
        var workers = new Task[Math.Max(1, Math.Min(concurrency, count))];
        for (var w = 0; w < workers.Length; w++)
        {
            workers[w] = Task.Run(async () =>
            {
                int i;
                while ((i = Interlocked.Increment(ref next)) < count && !ct.IsCancellationRequested)
                {
                    var begin = Stopwatch.GetTimestamp();
                    var socket = new ClientWebSocket();
                    socket.Options.HttpVersion = HttpVersion.Version20;
                    socket.Options.HttpVersionPolicy = HttpVersionPolicy.RequestVersionExact;
                    socket.Options.KeepAliveInterval = TimeSpan.Zero; // the raw client never pings either: the server's pings only
                    try
                    {
                        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                        timeout.CancelAfter(TimeSpan.FromSeconds(15));
                        await socket.ConnectAsync(uri, invoker, timeout.Token);
                        handshakes[i] = WsConnection.ToMicros(Stopwatch.GetTimestamp() - begin);
                        var tunnel = new H2Tunnel(socket, size);
                        tunnel.StartReading(ct);
                        tunnels[i] = tunnel;
                    }
                    catch (Exception ex)
                    {
                        socket.Dispose();
                        Interlocked.Increment(ref failures);
                        // ClientWebSocket's own message is generic ("Unable to connect"): the cause is the inner exception.
                        var cause = ex.InnerException is { } inner ? $" ({inner.GetType().Name}: {inner.Message})" : "";
                        Interlocked.CompareExchange(ref firstError, $"{ex.GetType().Name}: {ex.Message}{cause}", null);
                    }
                }
            }, CancellationToken.None);
        }
        await Task.WhenAll(workers);
        var seconds = (Stopwatch.GetTimestamp() - started) / (double)Stopwatch.Frequency;
        var open = new List<H2Tunnel>(count);
        var micros = new List<int>(count);
        for (var i = 0; i < count; i++)
        {
            if (tunnels[i] is { } t)
            {
                open.Add(t);
                micros.Add(handshakes[i]);
            }
        }
        if (failures > count / 100 + 1)
        {
            Console.Error.WriteLine($"loadgen: {failures} of {count} tunnels failed; first: {firstError}");
        }
        return new Opened(open, micros, failures, firstError, seconds);
    }
}
