using Gateway.Tests.Handshake;
using Gateway.Listeners;
using System.Diagnostics;
using System.Text.Json.Nodes;
using Gateway.Handshake;
using Gateway.Tests.Infrastructure;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace Gateway.Tests.Listeners;

/// <summary>Kestrel's request limits come from the file's Kestrel:Limits, so garbage or slow clients cannot hold resources.</summary>
public sealed class KestrelLimitsTests : IAsyncLifetime
{
    private ProbeBackend _backend = null!;
    private GatewayServer _gateway = null!;

    public async Task InitializeAsync()
    {
        _backend = await ProbeBackend.StartAsync();
        var config = HandshakeGateway.Config(HandshakeGateway.Proxy(_backend, ("open", "/open", null)), new JsonObject());
        config["Kestrel"] = new JsonObject
        {
            ["Limits"] = new JsonObject
            {
                ["MaxRequestLineSize"] = 1024,
                ["MaxRequestHeadersTotalSize"] = 4096,
                ["RequestHeadersTimeout"] = "00:00:01",
                ["KeepAliveTimeout"] = "00:00:02",
            },
        };
        _gateway = await GatewayServer.StartAsync(config);
    }

    public async Task DisposeAsync()
    {
        await _gateway.DisposeAsync();
        await _backend.DisposeAsync();
    }

    [Fact]
    public void The_file_sets_Kestrel_limits_and_the_gateway_shortens_the_header_timeout_by_default()
    {
        var limits = _gateway.Services.GetRequiredService<IOptions<KestrelServerOptions>>().Value.Limits;
        Assert.Equal(1024, limits.MaxRequestLineSize);
        Assert.Equal(4096, limits.MaxRequestHeadersTotalSize);
        Assert.Equal(TimeSpan.FromSeconds(1), limits.RequestHeadersTimeout);
        Assert.Equal(TimeSpan.FromSeconds(2), limits.KeepAliveTimeout);

        var defaults = new KestrelServerOptions().Limits;
        KestrelLimits.Apply(defaults, new ConfigurationBuilder().Build());
        Assert.Equal(TimeSpan.FromSeconds(10), defaults.RequestHeadersTimeout);
    }

    [Fact]
    public async Task Oversized_headers_get_431_and_an_oversized_request_line_414_before_any_backend()
    {
        var bigHeader = RawRequest.Handshake("/open/x", edits: [$"X-Padding: {new string('a', 8000)}"]);
        Assert.Equal(431, (await RawConnection.SendAsync(_gateway.Ws, bigHeader)).Status);

        var longLine = RawRequest.Handshake($"/open/{new string('b', 2000)}");
        Assert.Equal(414, (await RawConnection.SendAsync(_gateway.Ws, longLine)).Status);
        Assert.Equal(0, _backend.Requests);
    }

    [Fact]
    public async Task A_client_that_never_finishes_its_handshake_is_cut_off()
    {
        await using var connection = await RawConnection.OpenAsync(_gateway.Ws);
        await connection.WriteAsync("GET /open/x HTTP/1.1\r\nHost: gateway.test\r\nUpgrade: websocket\r\n");
        var clock = Stopwatch.StartNew();
        var answer = await connection.ReadUntilClosedAsync(TimeSpan.FromSeconds(10));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"closed only after {clock.Elapsed}");
        Assert.StartsWith("HTTP/1.1 408", answer);
        Assert.Equal(0, _backend.Requests);
    }

    [Fact]
    public async Task A_connection_that_sends_nothing_is_closed_after_the_keep_alive_timeout()
    {
        await using var connection = await RawConnection.OpenAsync(_gateway.Ws);
        var clock = Stopwatch.StartNew();
        await connection.ReadUntilClosedAsync(TimeSpan.FromSeconds(15));
        // Kestrel checks timeouts on its 1 s heartbeat, and counts from the connection's start, so allow some slack.
        Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(1.5), TimeSpan.FromSeconds(8));
    }
}
