using System.Diagnostics.CodeAnalysis;
using System.Diagnostics.Metrics;
using Gateway.Metrics;
using Gateway.Proxy;
using Gateway.Tests.Handshake;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace Gateway.Tests.Proxy;

/// <summary>
/// The retry's bounds and bookkeeping, with the rest of the proxy pipeline played by the test: which destination
/// each attempt got, what the forwarder left behind, and how much time each attempt took.
/// </summary>
public sealed class ConnectRetryMiddlewareTests : IDisposable
{
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly CapturingLoggerProvider _logs = new();
    private readonly ManualTime _time = new();
    private readonly Health _health = new();
    private readonly List<string> _attempts = new();

    public void Dispose() => _services.Dispose();

    [Fact]
    public async Task After_a_connect_that_took_most_of_the_deadline_one_more_attempt_starts_and_no_third()
    {
        var context = Context(passive: true, "a", "b", "c");
        // Every attempt times out after 15 s: the second starts at 15 s (< 20 s), the third would start at 30 s.
        var middleware = Middleware(ctx => Fail(ctx, TimeSpan.FromSeconds(15)));

        await middleware.InvokeAsync(context);

        Assert.Equal(2, _attempts.Count);
        Assert.Equal(_attempts.Count, _attempts.Distinct().Count());
        Assert.Equal(502, context.Response.StatusCode);
        Assert.NotNull(context.Features.Get<IForwarderErrorFeature>());
        Assert.Equal(_attempts, _health.Marked.Select(m => m.Destination));
        Assert.All(_health.Marked, m => Assert.Equal(TimeSpan.FromSeconds(45), m.Period));
        Assert.Collection(_logs.Lines,
            line => Assert.Contains("trying another destination", line.Message),
            line => Assert.Contains("past the retry deadline", line.Message));
    }

    [Fact]
    public async Task Three_attempts_at_most_and_each_failure_logged_once_without_a_stack_trace()
    {
        var context = Context(passive: false, "a", "b", "c", "d");
        var middleware = Middleware(ctx => Fail(ctx, TimeSpan.FromMilliseconds(1)));

        await middleware.InvokeAsync(context);

        Assert.Equal(3, _attempts.Count);
        Assert.Equal(3, _attempts.Distinct().Count());
        // Passive health off on this cluster: nothing marked.
        Assert.Empty(_health.Marked);
        Assert.Equal(3, _logs.Lines.Count);
        Assert.All(_logs.Lines, line =>
        {
            Assert.Equal(700, line.Id.Id);
            Assert.Contains("Connection refused (10.0.0.1:80)", line.Message);
            Assert.DoesNotContain(" at ", line.Message);
        });
        Assert.Contains("no attempts left", _logs.Lines.Last().Message);
        Assert.Contains($"destination {_attempts[0]}:", _logs.Lines.First().Message);
    }

    [Fact]
    public async Task A_retry_starts_from_the_request_as_the_pipeline_found_it()
    {
        var context = Context(passive: false, "a", "b");
        context.Response.Headers["X-Before"] = "kept";
        var before = new object();
        context.Items[before] = "kept";
        var seen = new List<(int Status, bool Error, string Headers, int Items, int Available)>();
        var middleware = Middleware(ctx =>
        {
            var proxy = ctx.GetReverseProxyFeature();
            seen.Add((ctx.Response.StatusCode, ctx.Features.Get<IForwarderErrorFeature>() is not null,
                string.Join(",", ctx.Response.Headers.Keys.Order()), ctx.Items.Count, proxy.AvailableDestinations.Count));
            if (_attempts.Count == 0)
            {
                // What a failed attempt leaves: the affinity cookie for the failed destination, its Items entry, a 502.
                ctx.Response.Headers.SetCookie = "gateway-affinity=for-a";
                ctx.Items[new object()] = "affinity key";
                return Fail(ctx, TimeSpan.Zero);
            }
            _attempts.Add(proxy.AvailableDestinations[0].DestinationId);
            proxy.ProxiedDestination = proxy.AvailableDestinations[0];
            return Task.CompletedTask;
        });

        await middleware.InvokeAsync(context);

        Assert.Equal(2, seen.Count);
        Assert.Equal((200, false, "X-Before", 1, 2), seen[0]);
        Assert.Equal((200, false, "X-Before", 1, 1), seen[1]);
        Assert.Equal("kept", context.Items[before]);
        Assert.Null(context.Features.Get<IForwarderErrorFeature>());
        Assert.Equal(200, context.Response.StatusCode);
    }

    [Theory]
    [InlineData("status")]
    [InlineData("not a connect failure")]
    [InlineData("body")]
    [InlineData("client gone")]
    public async Task Other_outcomes_are_left_as_they_are(string outcome)
    {
        var context = Context(passive: true, "a", "b");
        if (outcome == "body")
        {
            context.Features.Set<IHttpRequestBodyDetectionFeature>(new BodyDetection(canHaveBody: true));
        }
        var middleware = Middleware(ctx =>
        {
            switch (outcome)
            {
                case "status":
                    // The backend answered: its 503 is the answer.
                    Pick(ctx);
                    ctx.Response.StatusCode = 503;
                    return Task.CompletedTask;
                case "not a connect failure":
                    Pick(ctx);
                    ctx.Features.Set<IForwarderErrorFeature>(new ErrorFeature(ForwarderError.Request,
                        new HttpRequestException(HttpRequestError.ResponseEnded, "The response ended prematurely")));
                    ctx.Response.StatusCode = 502;
                    return Task.CompletedTask;
                case "client gone":
                    ((CancellableLifetime)ctx.Features.Get<IHttpRequestLifetimeFeature>()!).Abort();
                    return Fail(ctx, TimeSpan.Zero);
                default:
                    return Fail(ctx, TimeSpan.Zero);
            }
        });

        await middleware.InvokeAsync(context);

        Assert.Single(_attempts);
        Assert.Empty(_health.Marked);
        Assert.Empty(_logs.Lines);
    }

    private ConnectRetryMiddleware Middleware(RequestDelegate next)
    {
        var metrics = new ProxyMetrics(new GatewayMeter(_services.GetRequiredService<IMeterFactory>()), new NoState());
        var logger = new Logger<ConnectRetryMiddleware>(LoggerFactory.Create(logging => logging.AddProvider(_logs)));
        return new ConnectRetryMiddleware(next, metrics, _health, new ConnectRetryOptions(), _time, logger);
    }

    /// <summary>What load balancing and a forwarder whose connect failed after <paramref name="took"/> leave behind.</summary>
    private Task Fail(HttpContext context, TimeSpan took)
    {
        Pick(context);
        _time.Ticks += took.Ticks;
        context.Features.Set<IForwarderErrorFeature>(new ErrorFeature(ForwarderError.Request,
            new HttpRequestException(HttpRequestError.ConnectionError, "Connection refused (10.0.0.1:80)")));
        context.Response.StatusCode = 502;
        return Task.CompletedTask;
    }

    private void Pick(HttpContext context)
    {
        var proxy = context.GetReverseProxyFeature();
        var destination = proxy.AvailableDestinations[0];
        _attempts.Add(destination.DestinationId);
        proxy.AvailableDestinations = destination;
        proxy.ProxiedDestination = destination;
    }

    private static DefaultHttpContext Context(bool passive, params string[] destinations)
    {
        var config = new ClusterConfig
        {
            ClusterId = "chat",
            HealthCheck = passive
                ? new HealthCheckConfig { Passive = new PassiveHealthCheckConfig { Enabled = true, ReactivationPeriod = TimeSpan.FromSeconds(45) } }
                : null,
        };
        var cluster = new ClusterState("chat", new ClusterModel(config, new HttpMessageInvoker(new SocketsHttpHandler())));
        var states = destinations.Select(id => new DestinationState(id)).ToArray();
        var context = new DefaultHttpContext();
        context.Features.Set<IHttpRequestBodyDetectionFeature>(new BodyDetection(canHaveBody: false));
        context.Features.Set<IHttpRequestLifetimeFeature>(new CancellableLifetime());
        context.Features.Set<IReverseProxyFeature>(new ReverseProxyFeature
        {
            Route = new RouteModel(new RouteConfig { RouteId = "all", ClusterId = "chat" }, cluster, HttpTransformer.Default),
            Cluster = cluster.Model,
            AllDestinations = states,
            AvailableDestinations = states,
        });
        return context;
    }

    private sealed class ManualTime : TimeProvider
    {
        public long Ticks { get; set; }

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => Ticks;
    }

    private sealed class Health : IDestinationHealthUpdater
    {
        public List<(string Destination, TimeSpan Period)> Marked { get; } = new();

        public void SetPassive(ClusterState cluster, DestinationState destination, DestinationHealth newHealth, TimeSpan reactivationPeriod)
        {
            Assert.Equal(DestinationHealth.Unhealthy, newHealth);
            Marked.Add((destination.DestinationId, reactivationPeriod));
        }

        public void SetActive(ClusterState cluster, IEnumerable<NewActiveDestinationHealth> newHealthStates) => throw new NotSupportedException();
    }

    private sealed class ErrorFeature(ForwarderError error, Exception exception) : IForwarderErrorFeature
    {
        public ForwarderError Error => error;

        public Exception Exception => exception;
    }

    private sealed class BodyDetection(bool canHaveBody) : IHttpRequestBodyDetectionFeature
    {
        public bool CanHaveBody => canHaveBody;
    }

    private sealed class CancellableLifetime : IHttpRequestLifetimeFeature
    {
        private readonly CancellationTokenSource _aborted = new();

        public CancellationToken RequestAborted { get => _aborted.Token; set => throw new NotSupportedException(); }

        public void Abort() => _aborted.Cancel();
    }

    private sealed class NoState : IProxyStateLookup
    {
        public bool TryGetRoute(string id, [NotNullWhen(true)] out RouteModel? route)
        {
            route = null;
            return false;
        }

        public IEnumerable<RouteModel> GetRoutes() => [];

        public bool TryGetCluster(string id, [NotNullWhen(true)] out ClusterState? cluster)
        {
            cluster = null;
            return false;
        }

        public IEnumerable<ClusterState> GetClusters() => [];
    }
}
