using System.Buffers;
using System.Diagnostics.Metrics;
using System.IO.Pipelines;
using System.Net;
using Gateway.Listeners;
using Gateway.Metrics;
using Gateway.Tests.Handshake;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Time.Testing;

namespace Gateway.Tests.Listeners;

/// <summary>
/// The connection middleware on an in-memory pipe: it consumes exactly the header, hands the rest on with the client's
/// address, and closes (counts, logs once per second per reason) whatever is not a header, in virtual time.
/// </summary>
public sealed class ProxyProtocolMiddlewareTests : IDisposable
{
    private static readonly TimeSpan HeaderTimeout = TimeSpan.FromSeconds(5);
    private static readonly IPEndPoint Balancer = new(IPAddress.Parse("10.0.0.5"), 40000);

    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly CapturingLoggerProvider _logs = new();
    private readonly ILoggerFactory _loggers;
    private readonly FakeTimeProvider _time = new();
    private readonly ProxyProtocolReporter _reporter;
    private readonly MeterListener _meters = new();
    private readonly Dictionary<string, long> _rejected = new();

    public ProxyProtocolMiddlewareTests()
    {
        _loggers = LoggerFactory.Create(logging => logging.AddProvider(_logs).SetMinimumLevel(LogLevel.Trace));
        var meter = new GatewayMeter(_services.GetRequiredService<IMeterFactory>());
        _reporter = new ProxyProtocolReporter(meter, _loggers, _time);
        _meters.InstrumentPublished = (instrument, listener) =>
        {
            if (instrument.Meter == meter.Meter && instrument.Name == ProxyProtocolReporter.RejectedName)
            {
                listener.EnableMeasurementEvents(instrument);
            }
        };
        _meters.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            var labels = string.Join(",", tags.ToArray().Select(t => $"{t.Key}={t.Value}"));
            lock (_rejected)
            {
                _rejected[labels] = _rejected.GetValueOrDefault(labels) + value;
            }
        });
        _meters.Start();
    }

    public void Dispose()
    {
        _meters.Dispose();
        _loggers.Dispose();
        _services.Dispose();
    }

    private long Rejected(string reason)
    {
        lock (_rejected)
        {
            return _rejected.GetValueOrDefault($"listener=wss,reason={reason}");
        }
    }

    /// <summary>A connection whose transport reads what the test writes to <see cref="Client"/>, and what it saw of the next layer.</summary>
    private sealed class TestConnection
    {
        // Inline: each write is read by the middleware before WriteAsync returns, so one write is one read.
        private readonly Pipe _fromClient = new(new PipeOptions(readerScheduler: PipeScheduler.Inline, writerScheduler: PipeScheduler.Inline, useSynchronizationContext: false));
        private readonly Pipe _toClient = new();

        public TestConnection()
        {
            Context = new DefaultConnectionContext("test", new DuplexPipe(_fromClient.Reader, _toClient.Writer), new DuplexPipe(_toClient.Reader, _fromClient.Writer))
            {
                RemoteEndPoint = Balancer,
            };
        }

        public DefaultConnectionContext Context { get; }

        public PipeWriter Client => _fromClient.Writer;

        public TaskCompletionSource<(EndPoint? Remote, byte[] After)> Next { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>The next layer: records the remote endpoint and reads what the client sent after the header until it completes.</summary>
        public async Task NextLayerAsync(ConnectionContext connection)
        {
            var remote = connection.RemoteEndPoint;
            var input = connection.Transport.Input;
            while (true)
            {
                var read = await input.ReadAsync();
                if (read.IsCompleted)
                {
                    Next.SetResult((remote, read.Buffer.ToArray()));
                    input.AdvanceTo(read.Buffer.End);
                    return;
                }
                input.AdvanceTo(read.Buffer.Start, read.Buffer.End);
            }
        }

        private sealed record DuplexPipe(PipeReader Input, PipeWriter Output) : IDuplexPipe;
    }

    private (TestConnection Connection, Task Run) Start(string trusted = "10.0.0.0/24")
    {
        var connection = new TestConnection();
        var middleware = new ProxyProtocolMiddleware(connection.NextLayerAsync, "wss", HeaderTimeout, _time, _reporter,
            ProxyProtocolPeers.From([trusted], "Gateway:Listeners:wss:ProxyProtocolTrustedNetworks"));
        return (connection, middleware.OnConnectionAsync(connection.Context));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_header_fed_one_byte_per_read_is_consumed_exactly_and_names_the_client(bool version2)
    {
        var (connection, run) = Start();
        var header = version2 ? ProxyHeaders.V2("203.0.113.7", 51234) : ProxyHeaders.V1("203.0.113.7", 51234);
        var clientHello = new byte[] { 0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5 };
        foreach (var b in header)
        {
            await connection.Client.WriteAsync(new[] { b });
            await Task.Yield();
            Assert.False(connection.Next.Task.IsCompleted);
        }
        await connection.Client.WriteAsync(clientHello);
        await connection.Client.CompleteAsync();

        var (remote, rest) = await connection.Next.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(new IPEndPoint(IPAddress.Parse("203.0.113.7"), 51234), remote);
        Assert.Equal(clientHello, rest);
        await run.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Empty(_rejected);
    }

    [Fact]
    public async Task A_header_in_the_same_read_as_the_data_after_it_leaves_that_data_to_the_next_layer()
    {
        var (connection, run) = Start();
        var request = "GET /chat HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray();
        byte[] data = [.. ProxyHeaders.V2("2001:db8::7", 443, "2001:db8::1", 443), .. request];
        await connection.Client.WriteAsync(data);
        await connection.Client.CompleteAsync();

        var (remote, rest) = await connection.Next.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(new IPEndPoint(IPAddress.Parse("2001:db8::7"), 443), remote);
        Assert.Equal(request, rest);
        await run.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Theory]
    [InlineData("v2 LOCAL")]
    [InlineData("v1 UNKNOWN")]
    public async Task A_LOCAL_or_UNKNOWN_header_keeps_the_balancers_own_address(string kind)
    {
        var (connection, run) = Start();
        await connection.Client.WriteAsync(kind == "v2 LOCAL" ? ProxyHeaders.V2Local() : "PROXY UNKNOWN\r\n"u8.ToArray());
        await connection.Client.CompleteAsync();

        var (remote, rest) = await connection.Next.Task.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(Balancer, remote);
        Assert.Empty(rest);
        await run.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Theory]
    [InlineData("missing", new byte[] { 0x16, 0x03, 0x01, 0x00 })]
    [InlineData("garbage", new byte[] { 0x00, 0x01, 0x02 })]
    [InlineData("malformed", new byte[] { (byte)'P', (byte)'R', (byte)'O', (byte)'X', (byte)'Y', (byte)' ', (byte)'T', (byte)'C', (byte)'P', (byte)'9', (byte)'\r', (byte)'\n' })]
    public async Task Bytes_that_are_no_header_close_the_connection_at_once_and_are_counted(string reason, byte[] data)
    {
        var (connection, run) = Start();
        // The client keeps its side open: the verdict must not wait for more bytes or for the timeout.
        await connection.Client.WriteAsync(data);
        await run.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.False(connection.Next.Task.IsCompleted);
        Assert.Equal(1, Rejected(reason));
        var line = Assert.Single(_logs.Records, r => r.Category == ProxyProtocolReporter.LogCategory && r.Id.Id == 160);
        Assert.Equal(LogLevel.Warning, line.Level);
        Assert.Contains("10.0.0.5:40000", line.Message);
        Assert.Contains(reason, line.Message);
    }

    [Fact]
    public async Task A_peer_outside_the_trusted_networks_is_closed_before_a_byte_is_read_and_counted()
    {
        var (connection, run) = Start(trusted: "192.0.2.0/24");
        // The peer (10.0.0.5) never gets to send its header: the verdict needs none of its bytes.
        await run.WaitAsync(TimeSpan.FromSeconds(10));
        await connection.Client.WriteAsync(ProxyHeaders.V1("6.6.6.6", 4242));
        Assert.False(connection.Next.Task.IsCompleted);
        Assert.Equal(1, Rejected("untrusted_peer"));
        var line = Assert.Single(_logs.Records, r => r.Category == ProxyProtocolReporter.LogCategory && r.Id.Id == 160);
        Assert.Equal(LogLevel.Warning, line.Level);
        Assert.Contains("10.0.0.5:40000", line.Message);
        Assert.Contains("ProxyProtocolTrustedNetworks", line.Message);
    }

    [Fact]
    public async Task A_header_longer_than_the_cap_is_refused_without_reading_its_body()
    {
        var (connection, run) = Start();
        await connection.Client.WriteAsync(ProxyHeaders.V2Raw(command: 1, family: 1, transport: 1, new byte[5000])[..16]);
        await run.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(1, Rejected("oversized"));
    }

    [Fact]
    public async Task A_connection_that_ends_inside_the_header_is_truncated_and_one_that_sends_nothing_is_empty()
    {
        var (partial, partialRun) = Start();
        await partial.Client.WriteAsync(ProxyHeaders.V2("203.0.113.7", 51234)[..20]);
        await partial.Client.CompleteAsync();
        await partialRun.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(1, Rejected("truncated"));

        var (empty, emptyRun) = Start();
        await empty.Client.CompleteAsync();
        await emptyRun.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(1, Rejected("empty"));
        // Health checks and port scans close without a byte all day: they are counted, but logged only at Debug.
        Assert.Equal(LogLevel.Debug, Assert.Single(_logs.Records, r => r.Message.Contains("empty")).Level);
        Assert.False(partial.Next.Task.IsCompleted || empty.Next.Task.IsCompleted);
    }

    [Fact]
    public async Task A_header_that_does_not_arrive_in_time_closes_the_connection()
    {
        var (connection, run) = Start();
        await connection.Client.WriteAsync(ProxyHeaders.V1("203.0.113.7", 51234)[..10]);
        _time.Advance(HeaderTimeout - TimeSpan.FromMilliseconds(1));
        await Task.Yield();
        Assert.False(run.IsCompleted, "the header still has time");

        _time.Advance(TimeSpan.FromMilliseconds(1));
        await run.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(1, Rejected("timeout"));
        Assert.False(connection.Next.Task.IsCompleted);
    }

    [Fact]
    public async Task A_flood_of_one_reason_logs_one_line_per_second_with_the_number_left_out()
    {
        for (var i = 0; i < 50; i++)
        {
            var (connection, run) = Start();
            await connection.Client.WriteAsync("GET / HTTP/1.1\r\n"u8.ToArray());
            await run.WaitAsync(TimeSpan.FromSeconds(10));
        }
        // Another reason has its own allowance.
        var (other, otherRun) = Start();
        await other.Client.WriteAsync(new byte[] { 0xFF });
        await otherRun.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal(50, Rejected("missing"));
        Assert.Equal(2, _logs.Records.Count(r => r.Id.Id is 160 or 161));

        _time.Advance(TimeSpan.FromSeconds(1.5));
        var (late, lateRun) = Start();
        await late.Client.WriteAsync("GET / HTTP/1.1\r\n"u8.ToArray());
        await lateRun.WaitAsync(TimeSpan.FromSeconds(10));
        var last = _logs.Records.Last();
        Assert.Equal(161, last.Id.Id);
        Assert.Contains("49 more", last.Message);
    }
}
