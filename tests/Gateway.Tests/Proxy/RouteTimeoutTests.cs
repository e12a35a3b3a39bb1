using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json.Nodes;
using Gateway.Tests.Infrastructure;
using Gateway.Tests.Relay;

namespace Gateway.Tests.Proxy;

/// <summary>YARP's route Timeout: it cuts a plain request that takes too long, never an upgraded WebSocket.</summary>
public sealed class RouteTimeoutTests
{
    [Fact]
    public async Task A_route_timeout_answers_504_to_a_slow_request_and_leaves_a_tunnel_alone()
    {
        await using var backend = new RawBackend();
        using var silent = new TcpListener(IPAddress.Loopback, 0); // accepts, never answers
        silent.Start();
        var held = new List<TcpClient>();
        var accepting = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    held.Add(await silent.AcceptTcpClientAsync());
                }
            }
            catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
            {
            }
        });

        var config = RelayConfig.Build(backend.Address, RelayConfig.KeepAlive("00:00:00", "00:00:15"));
        var proxy = (JsonObject)config["ReverseProxy"]!;
        proxy["Routes"]!["raw"]!["Timeout"] = "00:00:01";
        proxy["Routes"]!["slow"] = new JsonObject
        {
            ["ClusterId"] = "slow",
            ["Match"] = new JsonObject { ["Path"] = "/slow/{**rest}" },
            ["Timeout"] = "00:00:01",
        };
        proxy["Clusters"]!["slow"] = new JsonObject
        {
            ["Destinations"] = new JsonObject { ["s1"] = new JsonObject { ["Address"] = $"http://127.0.0.1:{((IPEndPoint)silent.LocalEndpoint).Port}/" } },
        };
        await using var gateway = await GatewayServer.StartAsync(config);

        var tunnelAge = System.Diagnostics.Stopwatch.StartNew();
        await using var client = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/outlives");
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var response = await http.GetAsync(new Uri(gateway.Http, "/slow/anything"));
        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(0.9), TimeSpan.FromSeconds(8));

        // The tunnel is older than its route's timeout (with a margin: the request timer may fire a little early), and still relays.
        var margin = TimeSpan.FromSeconds(1.5) - tunnelAge.Elapsed;
        if (margin > TimeSpan.Zero)
        {
            await Task.Delay(margin);
        }
        await client.SendAsync(RawFrames.Encode(RawFrame.Text, "still here"u8));
        Assert.Equal("still here", Encoding.UTF8.GetString((await client.ReceiveAsync(TimeSpan.FromSeconds(5)))!.Payload));

        silent.Stop();
        await accepting;
        held.ForEach(c => c.Dispose());
    }
}
