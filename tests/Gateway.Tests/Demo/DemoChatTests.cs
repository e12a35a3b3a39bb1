using System.Net.Http.Json;
using System.Net.WebSockets;
using System.Text.Json;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Demo;

/// <summary>
/// What the demo page shows, through the shipped <c>config/demo.json</c>: a token from the backend's /demo-token names
/// the user in the welcome, a connection without one is anonymous, and a burst meets the rate limit's 1008.
/// </summary>
public sealed class DemoChatTests
{
    [Fact]
    public async Task A_demo_token_names_the_user_in_the_welcome_and_no_token_is_anonymous()
    {
        var tokenArgs = await DemoConfig.BackendTokenArgsAsync();
        // demo.sh must hand the backends the issuer and audience demo.json checks, or every demo token is refused.
        var script = await File.ReadAllTextAsync(Path.Combine(DemoConfig.RepositoryRoot, "demo.sh"));
        Assert.Contains($"--DemoToken:Issuer {tokenArgs[3]} --DemoToken:Audience {tokenArgs[5]}", script, StringComparison.Ordinal);
        Assert.Contains("--DemoToken:KeyFile config/demo-jwt.key", script, StringComparison.Ordinal);

        await using var b1 = await Backend.StartAsync("chat-1", 0, tokenArgs);
        await using var b2 = await Backend.StartAsync("chat-2", 0, tokenArgs);
        await using var gateway = await GatewayServer.StartAsync(await DemoConfig.LoadAsync(b1, b2));

        // As the page does: the token over the plain HTTP route, then the WebSocket with it in the query.
        using var http = new HttpClient { BaseAddress = gateway.Http, Timeout = WebSocketClient.Timeout };
        using var body = JsonDocument.Parse(await http.GetStringAsync("demo-token?name=alice"));
        var token = body.RootElement.GetProperty("access_token").GetString()!;

        using var named = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/chat/lobby?access_token=" + Uri.EscapeDataString(token), subprotocols: ["chat.v2"]);
        using var welcome = JsonDocument.Parse(await WebSocketClient.ReceiveTextAsync(named));
        Assert.Equal("alice", welcome.RootElement.GetProperty("user").GetString());

        using var anonymous = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/chat/lobby", subprotocols: ["chat.v2"]);
        using var anonymousWelcome = JsonDocument.Parse(await WebSocketClient.ReceiveTextAsync(anonymous));
        Assert.False(anonymousWelcome.RootElement.TryGetProperty("user", out _));

        // A bad token is still refused: Required false lets anonymous clients in, not forged ones.
        var refused = await Assert.ThrowsAsync<WebSocketException>(() =>
            WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/chat/lobby?access_token=" + Uri.EscapeDataString(token[..^4] + "AAAA"), subprotocols: ["chat.v2"]));
        Assert.Contains("401", refused.Message, StringComparison.Ordinal);

        await WebSocketClient.CloseAsync(named);
        await WebSocketClient.CloseAsync(anonymous);
    }

    [Fact]
    public async Task A_burst_of_30_is_closed_with_1008_rate_limit_exceeded()
    {
        await using var b1 = await Backend.StartAsync("chat-1");
        await using var b2 = await Backend.StartAsync("chat-2");
        await using var gateway = await GatewayServer.StartAsync(await DemoConfig.LoadAsync(b1, b2));
        // Another member of the room sees what passed the gateway (the sender's own echoes may be cut off by the Close).
        using var observer = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/chat/burst", subprotocols: ["chat.v2"]);
        await WebSocketClient.ReceiveTextAsync(observer);
        using var socket = await WebSocketClient.ConnectAsync(gateway, Transport.Ws, "/chat/burst", subprotocols: ["chat.v2"]);
        await WebSocketClient.ReceiveTextAsync(socket);

        // As the page's button: 30 at once, against PerConnection 5/s with a burst of 10.
        for (var i = 1; i <= 30; i++)
        {
            await WebSocketClient.SendTextAsync(socket, $"burst {i}/30");
        }

        while ((await WebSocketClient.ReceiveAsync(socket)).Type != WebSocketMessageType.Close)
        {
        }
        Assert.Equal(WebSocketCloseStatus.PolicyViolation, socket.CloseStatus);
        Assert.Equal("rate limit exceeded", socket.CloseStatusDescription);

        var passed = new List<string>();
        using var quiet = new CancellationTokenSource();
        var buffer = new byte[1024];
        try
        {
            while (true)
            {
                quiet.CancelAfter(TimeSpan.FromSeconds(1));
                var result = await observer.ReceiveAsync(buffer, quiet.Token);
                passed.Add(System.Text.Encoding.UTF8.GetString(buffer, 0, result.Count));
            }
        }
        catch (OperationCanceledException)
        {
            // A second without a message: the burst is over.
        }
        // The burst's 10 tokens, and those that refilled (5/s) while a busy machine sent the rest; never all 30, in order.
        Assert.InRange(passed.Count, 10, 20);
        Assert.Equal(Enumerable.Range(1, passed.Count).Select(i => $"burst {i}/30"), passed);
    }
}
