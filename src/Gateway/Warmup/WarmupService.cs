using Gateway.Lifecycle;
using System.Diagnostics;
using System.Net;
using System.Net.WebSockets;
using System.Runtime;
using Gateway.Admin;
using Gateway.Configuration;
using Gateway.Listeners;
using Gateway.Metrics;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Yarp.ReverseProxy;

namespace Gateway.Warmup;

/// <summary>
/// Runs WebSocket sessions through the gateway's own listeners at startup, the way clients will (handshake over
/// ws, wss and wss on HTTP/2, the handshake gate, YARP's forwarder, the backend connector, the relay, a few echoed
/// messages, a clean close), until the JIT goes quiet; readiness waits for it. The sessions go to a private echo
/// backend through a route that exists only meanwhile, so no operator's backend sees them and no client can reach
/// them; the gateway's instruments and access log skip them at the source (<see cref="InternalTraffic"/>).
/// </summary>
internal sealed class WarmupService : IHostedService, IDisposable
{
    private const int Concurrency = 16;
    private const int SessionsPerRound = 64;
    private const int MessagesPerSession = 4;
    private const int FailuresBeforeGivingUp = 5;
    private const int QuietRoundsToStop = 3;
    /// <summary>A round that compiles this few methods is noise (timers, the odd late path), not the handshake path.</summary>
    private const int QuietMethodsPerRound = 10;
    private static readonly TimeSpan SessionTimeout = TimeSpan.FromSeconds(5);
    // Tiered compilation compiles hot methods on a background thread (and, without the runtimeconfig's
    // CallCountingDelayMs=0, starts counting only after 100 ms without new methods): a pause between rounds lets
    // that finish before the next round measures.
    private static readonly TimeSpan PauseBetweenRounds = TimeSpan.FromMilliseconds(150);

    private readonly WarmupOptions _options;
    private readonly GatewayOptions _gateway;
    private readonly BoundListeners _listeners;
    private readonly IProxyStateLookup _proxyState;
    private readonly WarmupRoute _route;
    private readonly Readiness _readiness;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ILogger<WarmupService> _logger;
    private readonly CancellationTokenSource _stopping = new();
    private IDisposable? _hold;
    private Task? _run;

    public WarmupService(GatewayOptions gateway, BoundListeners listeners, IProxyStateLookup proxyState, WarmupRoute route, Readiness readiness, IHostApplicationLifetime lifetime, ILogger<WarmupService> logger)
    {
        _options = gateway.Warmup;
        _gateway = gateway;
        _listeners = listeners;
        _proxyState = proxyState;
        _route = route;
        _readiness = readiness;
        _lifetime = lifetime;
        _logger = logger;
    }

    /// <summary>Finishes when the warm-up has (or never started because the host did not start).</summary>
    public Task Completion => _run ?? Task.CompletedTask;

    /// <summary>What the warm-up did; null until it has finished (or if it failed or was cut by shutdown).</summary>
    public WarmupReport? Report { get; private set; }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _hold = _readiness.Hold();
        _lifetime.ApplicationStarted.Register(() => _run = Task.Run(RunAsync));
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        _stopping.Cancel();
        if (_run is { } run)
        {
            await run.WaitAsync(cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    public void Dispose()
    {
        _hold?.Dispose();
        _stopping.Dispose();
    }

    private async Task RunAsync()
    {
        var clock = Stopwatch.StartNew();
        try
        {
            var targets = Targets();
            if (targets.Count == 0)
            {
                Log.Skipped(_logger, "no public listener takes HTTP/1.1 or TLS HTTP/2 WebSocket handshakes");
                return;
            }
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            deadline.CancelAfter(_options.MaxDuration);
            var methodsBefore = JitInfo.GetCompiledMethodCount();
            var (sessions, failures) = await WarmUpAsync(targets, deadline.Token);
            // The sessions' garbage, and the heap they grew, are not the gateway's working set: hand them back
            // before traffic comes, so the process starts serving from its real baseline.
            GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
            var report = new WarmupReport(sessions, failures, targets.Select(t => t.ToString()).ToArray(),
                targets.Where(t => t.GaveUp).Select(t => t.ToString()).ToArray(), clock.Elapsed,
                EndedByDeadline: deadline.IsCancellationRequested, (int)(JitInfo.GetCompiledMethodCount() - methodsBefore));
            Log.Finished(_logger, sessions, string.Join(", ", report.Targets), report.Duration.TotalSeconds, failures, report.MethodsCompiled);
            Report = report;
        }
        catch (Exception ex) when (!_stopping.IsCancellationRequested)
        {
            Log.Failed(_logger, clock.Elapsed.TotalSeconds, ex.Message);
        }
        catch (OperationCanceledException)
        {
            // Shutdown began during the warm-up.
        }
        finally
        {
            _hold?.Dispose();
        }
    }

    private async Task<(int Sessions, int Failures)> WarmUpAsync(List<WarmupTarget> targets, CancellationToken cancellationToken)
    {
        await using var backend = await WarmupEchoBackend.StartAsync(cancellationToken);
        _route.Open(backend.Address);
        try
        {
            await WaitForRouteAsync(cancellationToken);
            using var invoker = new HttpMessageInvoker(new SocketsHttpHandler
            {
                UseProxy = false, // never through HTTP_PROXY: the sessions are for this process's own listeners
                ConnectTimeout = SessionTimeout,
                EnableMultipleHttp2Connections = true,
                // The gateway's own certificate, reached on its own listener: nothing to verify.
                SslOptions = { RemoteCertificateValidationCallback = delegate { return true; } },
                ConnectCallback = LocalProxyHeaderConnector.For(ProxyProtocolPorts()),
            });
            var payload = new byte[64];
            Random.Shared.NextBytes(payload);

            int sessions = 0, failures = 0, quietRounds = 0;
            for (var round = 1; quietRounds < QuietRoundsToStop && !cancellationToken.IsCancellationRequested; round++)
            {
                var methodsBefore = JitInfo.GetCompiledMethodCount();
                var active = targets.Where(t => !t.GaveUp).ToArray();
                if (active.Length == 0)
                {
                    break;
                }
                var next = -1;
                var workers = new Task[Concurrency];
                for (var w = 0; w < workers.Length; w++)
                {
                    workers[w] = Task.Run(async () =>
                    {
                        var buffer = new byte[payload.Length];
                        for (var i = Interlocked.Increment(ref next); i < SessionsPerRound && !cancellationToken.IsCancellationRequested; i = Interlocked.Increment(ref next))
                        {
                            var target = active[i % active.Length];
                            if (await target.RunSessionAsync(invoker, payload, buffer, _logger, cancellationToken))
                            {
                                Interlocked.Increment(ref sessions);
                            }
                            else
                            {
                                Interlocked.Increment(ref failures);
                            }
                        }
                    }, cancellationToken);
                }
                await Task.WhenAll(workers).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                await Task.Delay(PauseBetweenRounds, cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
                var compiled = (int)(JitInfo.GetCompiledMethodCount() - methodsBefore);
                quietRounds = compiled <= QuietMethodsPerRound ? quietRounds + 1 : 0;
                Log.Round(_logger, round, sessions, compiled);
            }
            _stopping.Token.ThrowIfCancellationRequested();
            return (sessions, failures);
        }
        finally
        {
            _route.Close();
        }
    }

    private async Task WaitForRouteAsync(CancellationToken cancellationToken)
    {
        // YARP applies a provider's change on its own schedule; the route must be live before the first session.
        while (!_proxyState.TryGetRoute(_route.RouteId, out _))
        {
            await Task.Delay(10, cancellationToken);
        }
    }

    private List<WarmupTarget> Targets()
    {
        var targets = new List<WarmupTarget>();
        foreach (var (listener, endPoint) in _listeners.All)
        {
            if (listener.IsAdmin || endPoint is null || !_gateway.Listeners.TryGetValue(listener.Name, out var options))
            {
                continue;
            }
            // With ReusePort a connection to a shared port may reach another process: the listener's private twin stands in.
            if (!listener.WarmupOnly && _gateway.ReusePort && options.Port is > 0)
            {
                continue;
            }
            var address = endPoint.Address.Equals(IPAddress.Any) ? IPAddress.Loopback
                : endPoint.Address.Equals(IPAddress.IPv6Any) ? IPAddress.IPv6Loopback
                : endPoint.Address;
            var uri = new UriBuilder(listener.WebSocketScheme, address.ToString(), endPoint.Port, _route.Path).Uri;
            var protocols = options.Protocols ?? (listener.Tls ? HttpProtocols.Http1AndHttp2 : HttpProtocols.Http1);
            if (protocols.HasFlag(HttpProtocols.Http1))
            {
                targets.Add(new WarmupTarget(listener.Name, uri, HttpVersion.Version11));
            }
            // RFC 8441 WebSockets need TLS here (ALPN); cleartext HTTP/2 takes no upgrades.
            if (listener.Tls && protocols.HasFlag(HttpProtocols.Http2))
            {
                targets.Add(new WarmupTarget(listener.Name, uri, HttpVersion.Version20));
            }
        }
        return targets;
    }

    /// <summary>The ports of the listeners whose connections must open with a PROXY protocol header.</summary>
    private HashSet<int> ProxyProtocolPorts()
    {
        var ports = new HashSet<int>();
        foreach (var (listener, endPoint) in _listeners.All)
        {
            if (endPoint is not null && _gateway.Listeners.TryGetValue(listener.Name, out var options) && options.ProxyProtocol)
            {
                ports.Add(endPoint.Port);
            }
        }
        return ports;
    }

    /// <summary>One listener and HTTP version; gives up after a few failures in a row so one broken path costs little.</summary>
    private sealed class WarmupTarget(string listener, Uri uri, Version version)
    {
        private int _failuresInARow;

        public bool GaveUp { get; private set; }

        public async Task<bool> RunSessionAsync(HttpMessageInvoker invoker, byte[] payload, byte[] buffer, ILogger logger, CancellationToken cancellationToken)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(SessionTimeout);
            try
            {
                using var socket = new ClientWebSocket();
                socket.Options.HttpVersion = version;
                socket.Options.HttpVersionPolicy = HttpVersionPolicy.RequestVersionExact;
                await socket.ConnectAsync(uri, invoker, timeout.Token);
                for (var i = 0; i < MessagesPerSession; i++)
                {
                    await socket.SendAsync(payload, WebSocketMessageType.Binary, endOfMessage: true, timeout.Token);
                    ValueWebSocketReceiveResult received;
                    var total = 0;
                    do
                    {
                        received = await socket.ReceiveAsync(buffer.AsMemory(total), timeout.Token);
                        total += received.Count;
                    }
                    while (!received.EndOfMessage && total < buffer.Length);
                    if (received.MessageType == WebSocketMessageType.Close || total != payload.Length)
                    {
                        throw new WebSocketException($"the echo came back as {received.MessageType}, {total} bytes");
                    }
                }
                await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, null, timeout.Token);
                Volatile.Write(ref _failuresInARow, 0);
                return true;
            }
            catch (Exception ex) when (!cancellationToken.IsCancellationRequested)
            {
                if (Interlocked.Increment(ref _failuresInARow) == FailuresBeforeGivingUp)
                {
                    GaveUp = true;
                    Log.TargetFailed(logger, ToString(), FailuresBeforeGivingUp, ex.GetBaseException().Message);
                }
                return false;
            }
        }

        public override string ToString() => $"{listener} (HTTP/{(version.Major == 2 ? "2" : "1.1")})";
    }
}

/// <summary>The warm-up's outcome, for tests and whoever embeds the gateway.</summary>
internal sealed record WarmupReport(int Sessions, int Failures, string[] Targets, string[] GaveUp, TimeSpan Duration, bool EndedByDeadline, int MethodsCompiled);
