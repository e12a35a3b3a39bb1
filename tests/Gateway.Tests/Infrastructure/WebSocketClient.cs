using System.Buffers;
using System.Net;
using System.Net.WebSockets;
using System.Text;
using System.Text.Json;

namespace Gateway.Tests.Infrastructure;

public enum Transport
{
    /// <summary>ws:// over HTTP/1.1 upgrade.</summary>
    Ws,
    /// <summary>wss:// over HTTP/1.1 upgrade.</summary>
    WssHttp11,
    /// <summary>wss:// over HTTP/2 extended CONNECT (RFC 8441).</summary>
    WssHttp2,
}

/// <summary>Helpers around a real <see cref="ClientWebSocket"/>.</summary>
public static class WebSocketClient
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    public static async Task<ClientWebSocket> ConnectAsync(
        GatewayServer gateway, Transport transport, string path, TestCertificates? trust = null,
        CookieContainer? cookies = null, IEnumerable<string>? subprotocols = null, CancellationToken cancellationToken = default)
    {
        var client = new ClientWebSocket();
        client.Options.CollectHttpResponseDetails = true;
        client.Options.KeepAliveInterval = TimeSpan.Zero;
        foreach (var protocol in subprotocols ?? [])
        {
            client.Options.AddSubProtocol(protocol);
        }
        var baseUri = transport == Transport.Ws ? gateway.Ws : gateway.Wss;
        var uri = new Uri(baseUri, path.TrimStart('/'));
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(Timeout);
        if (transport == Transport.WssHttp2)
        {
            client.Options.HttpVersion = HttpVersion.Version20;
            client.Options.HttpVersionPolicy = HttpVersionPolicy.RequestVersionExact;
            var handler = new SocketsHttpHandler { UseCookies = cookies is not null, CookieContainer = cookies ?? new CookieContainer() };
            handler.SslOptions.RemoteCertificateValidationCallback = trust is null ? null : trust.Validate;
            await client.ConnectAsync(uri, new HttpMessageInvoker(handler), timeout.Token);
        }
        else
        {
            if (cookies is not null)
            {
                client.Options.Cookies = cookies;
            }
            if (trust is not null)
            {
                client.Options.RemoteCertificateValidationCallback = trust.Validate;
            }
            await client.ConnectAsync(uri, timeout.Token);
        }
        return client;
    }

    public static async Task SendAsync(WebSocket socket, ReadOnlyMemory<byte> payload, WebSocketMessageType type)
    {
        using var timeout = new CancellationTokenSource(Timeout);
        await socket.SendAsync(payload, type, endOfMessage: true, timeout.Token);
    }

    public static Task SendTextAsync(WebSocket socket, string text) =>
        SendAsync(socket, Encoding.UTF8.GetBytes(text), WebSocketMessageType.Text);

    /// <summary>Receives one whole message (all its frames).</summary>
    public static async Task<(WebSocketMessageType Type, byte[] Payload)> ReceiveAsync(WebSocket socket)
    {
        using var timeout = new CancellationTokenSource(Timeout);
        var buffer = new ArrayBufferWriter<byte>();
        while (true)
        {
            var memory = buffer.GetMemory(64 * 1024);
            var result = await socket.ReceiveAsync(memory, timeout.Token);
            buffer.Advance(result.Count);
            if (result.MessageType == WebSocketMessageType.Close)
            {
                return (WebSocketMessageType.Close, buffer.WrittenSpan.ToArray());
            }
            if (result.EndOfMessage)
            {
                return (result.MessageType, buffer.WrittenSpan.ToArray());
            }
        }
    }

    public static async Task<string> ReceiveTextAsync(WebSocket socket)
    {
        var (type, payload) = await ReceiveAsync(socket);
        Assert.Equal(WebSocketMessageType.Text, type);
        return Encoding.UTF8.GetString(payload);
    }

    /// <summary>Reads the chat backend's welcome message and returns the instance that served the connection.</summary>
    public static async Task<string> ReceiveWelcomeBackendAsync(WebSocket socket)
    {
        using var welcome = JsonDocument.Parse(await ReceiveTextAsync(socket));
        Assert.Equal("welcome", welcome.RootElement.GetProperty("type").GetString());
        return welcome.RootElement.GetProperty("backend").GetString()!;
    }

    /// <summary>Closes from the client side with 1000 and returns the close status the peer answered with.</summary>
    public static async Task<WebSocketCloseStatus?> CloseAsync(WebSocket socket)
    {
        using var timeout = new CancellationTokenSource(Timeout);
        await socket.CloseAsync(WebSocketCloseStatus.NormalClosure, "bye", timeout.Token);
        return socket.CloseStatus;
    }
}
