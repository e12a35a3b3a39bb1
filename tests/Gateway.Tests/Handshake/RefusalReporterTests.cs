using Gateway.Handshake;
using Gateway.Metrics;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using System.Diagnostics.Metrics;

namespace Gateway.Tests.Handshake;

/// <summary>Refusal logging is throttled per reason, with a count of what it left out.</summary>
public sealed class RefusalReporterTests
{
    private sealed class ManualTime : TimeProvider
    {
        public long Ticks { get; set; }

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => Ticks;
    }

    [Fact]
    public async Task A_flood_of_one_reason_logs_one_line_per_interval_with_the_number_left_out()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var metrics = new HandshakeMetrics(new GatewayMeter(services.GetRequiredService<IMeterFactory>()));
        var logs = new CapturingLoggerProvider();
        var time = new ManualTime();
        var reporter = new RefusalReporter(metrics, logs.CreateLogger(RefusalReporter.LogCategory), time, TimeSpan.FromSeconds(1));

        for (var i = 0; i < 100; i++)
        {
            await reporter.RefuseAsync(Context(), RefusalReason.Origin, "chat", "https://evil-example.com");
        }
        var first = Assert.Single(logs.Lines);
        Assert.Contains("403", first.Message);
        Assert.Contains("https://evil-example.com", first.Message);

        // Another reason has its own allowance.
        await reporter.RefuseAsync(Context(), RefusalReason.Key, "chat");
        Assert.Equal(2, logs.Lines.Count);

        time.Ticks += TimeSpan.FromSeconds(1.5).Ticks;
        await reporter.RefuseAsync(Context(), RefusalReason.Origin, "chat", "https://evil-example.com");
        Assert.Equal(3, logs.Lines.Count);
        Assert.Contains("99 more refusals", logs.Lines.Last().Message);
    }

    [Fact]
    public async Task A_refusal_is_a_short_text_answer_with_the_headers_its_rule_calls_for()
    {
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var metrics = new HandshakeMetrics(new GatewayMeter(services.GetRequiredService<IMeterFactory>()));
        var reporter = new RefusalReporter(metrics, new CapturingLoggerProvider(), TimeProvider.System, TimeSpan.FromSeconds(1));

        var context = Context();
        await reporter.RefuseAsync(context, RefusalReason.RateLimit, "chat", retryAfter: TimeSpan.FromSeconds(2.2));
        Assert.Equal(429, context.Response.StatusCode);
        Assert.Equal("3", context.Response.Headers.RetryAfter.ToString());
        Assert.Equal("text/plain; charset=utf-8", context.Response.ContentType);
        var body = System.Text.Encoding.UTF8.GetString(((MemoryStream)context.Response.Body).ToArray());
        Assert.StartsWith("429 ", body);
        Assert.Equal(context.Response.ContentLength, ((MemoryStream)context.Response.Body).Length);
    }

    [Theory]
    [InlineData(nameof(RefusalReason.ConnectionLimit))]
    [InlineData(nameof(RefusalReason.ClientConnectionLimit))]
    [InlineData(nameof(RefusalReason.Descriptors))]
    public async Task Every_503_for_lack_of_room_says_when_to_retry(string reasonName)
    {
        // By name: a public test method cannot take the gateway's internal enum.
        var reason = Enum.Parse<RefusalReason>(reasonName);
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        var metrics = new HandshakeMetrics(new GatewayMeter(services.GetRequiredService<IMeterFactory>()));
        var reporter = new RefusalReporter(metrics, new CapturingLoggerProvider(), TimeProvider.System, TimeSpan.FromSeconds(1));

        var context = Context();
        await reporter.RefuseAsync(context, reason, "chat");
        Assert.Equal(503, context.Response.StatusCode);
        Assert.Equal("5", context.Response.Headers.RetryAfter.ToString());
    }

    [Fact]
    public void Every_503_and_no_other_refusal_has_a_fixed_Retry_After()
    {
        foreach (var refusal in Refusal.All)
        {
            Assert.Equal(refusal.Status == 503, refusal.RetryAfter is not null);
        }
    }

    private static DefaultHttpContext Context()
    {
        var context = new DefaultHttpContext();
        context.Request.Protocol = "HTTP/1.1";
        context.Response.Body = new MemoryStream();
        return context;
    }
}
