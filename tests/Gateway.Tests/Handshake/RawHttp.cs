using System.Net.Sockets;
using System.Text;

namespace Gateway.Tests.Handshake;

/// <summary>A response as read off the wire: status, headers (repeated ones joined with ", "), body.</summary>
public sealed record RawResponse(int Status, IReadOnlyDictionary<string, string> Headers, string Body)
{
    public string? Header(string name) => Headers.TryGetValue(name, out var value) ? value : null;
}

/// <summary>
/// HTTP/1.1 over a plain TCP connection, written byte by byte by the test: <c>ClientWebSocket</c> only ever sends
/// valid handshakes, and these tests need every kind of invalid one.
/// </summary>
public sealed class RawConnection : IAsyncDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private readonly TcpClient _client;
    private readonly NetworkStream _stream;
    private readonly byte[] _buffer = new byte[16 * 1024];
    private int _start;
    private int _end;

    private RawConnection(TcpClient client)
    {
        _client = client;
        _stream = client.GetStream();
    }

    public static async Task<RawConnection> OpenAsync(Uri server)
    {
        var client = new TcpClient { NoDelay = true };
        using var timeout = new CancellationTokenSource(Timeout);
        await client.ConnectAsync(server.Host, server.Port, timeout.Token);
        return new RawConnection(client);
    }

    /// <summary>Sends one request on a new connection and reads the response head (and body, unless it is a 101).</summary>
    public static async Task<RawResponse> SendAsync(Uri server, string request)
    {
        await using var connection = await OpenAsync(server);
        return await connection.RoundTripAsync(request);
    }

    public async Task<RawResponse> RoundTripAsync(string request)
    {
        await WriteAsync(request);
        // A response to HEAD announces a Content-Length but carries no body (RFC 9110 section 9.3.2).
        return await ReadResponseAsync(withBody: !request.StartsWith("HEAD ", StringComparison.Ordinal));
    }

    public async Task WriteAsync(string text)
    {
        using var timeout = new CancellationTokenSource(Timeout);
        await _stream.WriteAsync(Encoding.ASCII.GetBytes(text), timeout.Token);
    }

    public async Task<RawResponse> ReadResponseAsync(bool withBody = true)
    {
        using var timeout = new CancellationTokenSource(Timeout);
        var head = await ReadHeadAsync(timeout.Token);
        var lines = head.Split("\r\n");
        var statusLine = lines[0].Split(' ', 3);
        var status = int.Parse(statusLine[1], System.Globalization.CultureInfo.InvariantCulture);
        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var line in lines.Skip(1))
        {
            var colon = line.IndexOf(':');
            var name = line[..colon].Trim();
            var value = line[(colon + 1)..].Trim();
            headers[name] = headers.TryGetValue(name, out var existing) ? existing + ", " + value : value;
        }
        var body = string.Empty;
        if (withBody && status != 101 && headers.TryGetValue("Content-Length", out var length))
        {
            body = Encoding.UTF8.GetString(await ReadExactlyAsync(int.Parse(length, System.Globalization.CultureInfo.InvariantCulture), timeout.Token));
        }
        return new RawResponse(status, headers, body);
    }

    /// <summary>Waits until the server closes the connection; returns what it sent before (if anything).</summary>
    public async Task<string> ReadUntilClosedAsync(TimeSpan within)
    {
        using var timeout = new CancellationTokenSource(within);
        var received = new StringBuilder(Encoding.ASCII.GetString(_buffer, _start, _end - _start));
        _start = _end = 0;
        try
        {
            int read;
            while ((read = await _stream.ReadAsync(_buffer, timeout.Token)) > 0)
            {
                received.Append(Encoding.ASCII.GetString(_buffer, 0, read));
            }
        }
        catch (IOException)
        {
            // A reset is a close too.
        }
        return received.ToString();
    }

    private async Task<string> ReadHeadAsync(CancellationToken cancel)
    {
        while (true)
        {
            var end = _buffer.AsSpan(_start, _end - _start).IndexOf("\r\n\r\n"u8);
            if (end >= 0)
            {
                var head = Encoding.ASCII.GetString(_buffer, _start, end);
                _start += end + 4;
                return head;
            }
            await FillAsync(cancel);
        }
    }

    private async Task<byte[]> ReadExactlyAsync(int count, CancellationToken cancel)
    {
        while (_end - _start < count)
        {
            await FillAsync(cancel);
        }
        var bytes = _buffer.AsSpan(_start, count).ToArray();
        _start += count;
        return bytes;
    }

    private async Task FillAsync(CancellationToken cancel)
    {
        if (_start > 0)
        {
            Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
            _end -= _start;
            _start = 0;
        }
        var read = await _stream.ReadAsync(_buffer.AsMemory(_end), cancel);
        if (read == 0)
        {
            throw new EndOfStreamException("the server closed the connection before a whole response");
        }
        _end += read;
    }

    public ValueTask DisposeAsync()
    {
        _client.Dispose();
        return ValueTask.CompletedTask;
    }
}

/// <summary>Builds handshake requests: a valid one, then edits that break one rule each.</summary>
public static class RawRequest
{
    public const string ValidKey = "dGhlIHNhbXBsZSBub25jZQ==";

    /// <summary>
    /// A valid HTTP/1.1 WebSocket handshake for <paramref name="path"/>, with edits: <c>"Name: value"</c> replaces (or
    /// adds) a header, <c>"+Name: value"</c> adds another line of it, <c>"-Name"</c> removes it.
    /// </summary>
    public static string Handshake(string path, string method = "GET", string version = "HTTP/1.1", params string[] edits)
    {
        var headers = new List<(string Name, string Value)>
        {
            ("Host", "gateway.test"),
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Key", ValidKey),
            ("Sec-WebSocket-Version", "13"),
        };
        foreach (var edit in edits)
        {
            if (edit.StartsWith('-'))
            {
                headers.RemoveAll(h => string.Equals(h.Name, edit[1..], StringComparison.OrdinalIgnoreCase));
                continue;
            }
            var add = edit.StartsWith('+');
            var colon = edit.IndexOf(':');
            var name = edit[(add ? 1 : 0)..colon].Trim();
            var value = edit[(colon + 1)..].Trim();
            var index = headers.FindIndex(h => string.Equals(h.Name, name, StringComparison.OrdinalIgnoreCase));
            if (index >= 0 && !add)
            {
                headers[index] = (name, value);
            }
            else
            {
                headers.Add((name, value));
            }
        }
        var text = new StringBuilder($"{method} {path} {version}\r\n");
        foreach (var (name, value) in headers)
        {
            text.Append(name).Append(": ").Append(value).Append("\r\n");
        }
        return text.Append("\r\n").ToString();
    }

    /// <summary>An ordinary request: no upgrade headers at all.</summary>
    public static string Plain(string path, string method = "GET", string host = "gateway.test") =>
        $"{method} {path} HTTP/1.1\r\nHost: {host}\r\n{(method is "POST" or "PUT" ? "Content-Length: 0\r\n" : "")}\r\n";
}
