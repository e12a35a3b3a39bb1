using System.Net.WebSockets;
using System.Text;
using Microsoft.AspNetCore.Builder;

namespace ChatBackend.Tests;

/// <summary>The real backend, started in-process on an ephemeral loopback port.</summary>
internal sealed class RunningBackend : IAsyncDisposable
{
    public const string Instance = "t1";

    private RunningBackend(WebApplication app, Uri httpBase)
    {
        App = app;
        HttpBase = httpBase;
    }

    public WebApplication App { get; }

    public Uri HttpBase { get; }

    public static async Task<RunningBackend> StartAsync(params string[] extraArgs)
    {
        string[] args = ["--urls", "http://127.0.0.1:0", "--Instance", Instance, "--Logging:LogLevel:Default", "Warning", .. extraArgs];
        var app = ChatBackendApp.Build(args);
        await app.StartAsync();
        // After StartAsync, Urls holds the actual port Kestrel bound for ":0".
        var url = app.Urls.Single();
        return new RunningBackend(app, new Uri(url.EndsWith('/') ? url : url + "/"));
    }

    public Uri WebSocketUri(string path) => new(new Uri(HttpBase.ToString().Replace("http://", "ws://", StringComparison.Ordinal)), path);

    public async Task<ClientWebSocket> ConnectAsync(string path, CancellationToken token, Action<ClientWebSocketOptions>? configure = null)
    {
        var client = new ClientWebSocket();
        configure?.Invoke(client.Options);
        await client.ConnectAsync(WebSocketUri(path), token);
        return client;
    }

    public HttpClient CreateHttpClient() => new() { BaseAddress = HttpBase, Timeout = TimeSpan.FromSeconds(10) };

    public async ValueTask DisposeAsync()
    {
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        await App.StopAsync(stop.Token);
        await App.DisposeAsync();
    }
}

/// <summary>Shared backend for tests that only need the default configuration.</summary>
public sealed class BackendFixture : IAsyncLifetime
{
    private RunningBackend? _backend;

    internal RunningBackend Backend => _backend ?? throw new InvalidOperationException("Not started.");

    public async Task InitializeAsync() => _backend = await RunningBackend.StartAsync();

    public async Task DisposeAsync()
    {
        if (_backend is not null)
        {
            await _backend.DisposeAsync();
        }
    }
}

internal readonly record struct Received(WebSocketMessageType Type, byte[] Payload, WebSocketCloseStatus? CloseStatus, string? CloseDescription)
{
    public string Text => Encoding.UTF8.GetString(Payload);
}

internal static class WebSocketTestExtensions
{
    /// <summary>Reads one whole message (or the Close).</summary>
    public static async Task<Received> ReceiveWholeAsync(this WebSocket socket, CancellationToken token)
    {
        var output = new MemoryStream();
        var chunk = new byte[64 * 1024];
        while (true)
        {
            var result = await socket.ReceiveAsync(chunk.AsMemory(), token);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                return new Received(WebSocketMessageType.Close, [], socket.CloseStatus, socket.CloseStatusDescription);
            }

            output.Write(chunk, 0, result.Count);
            if (result.EndOfMessage)
            {
                return new Received(result.MessageType, output.ToArray(), null, null);
            }
        }
    }

    public static Task SendTextAsync(this WebSocket socket, string text, CancellationToken token) =>
        socket.SendAsync(Encoding.UTF8.GetBytes(text), WebSocketMessageType.Text, endOfMessage: true, token);

    /// <summary>Completes the handshake after the server sent Close.</summary>
    public static async Task AnswerCloseAsync(this WebSocket socket, CancellationToken token)
    {
        if (socket.State == WebSocketState.CloseReceived)
        {
            await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, token);
        }
    }
}
