using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Listeners.LeanHttp1.Fuzz;

/// <summary>
/// A backend on a bare socket that keeps the exact bytes of every request it receives (head and body, Latin-1), filed
/// under the request's <c>X-Fuzz-Case</c> value. An upgrade gets a 101 and is then drained; anything else gets a short
/// 200 and the connection is closed, so no request ever waits in a pooled connection.
/// </summary>
internal sealed class FuzzBackend : IAsyncDisposable
{
    private const string CaseHeader = "X-Fuzz-Case:";
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly ConcurrentDictionary<string, ConcurrentQueue<string>> _received = new();
    private readonly ConcurrentBag<TcpClient> _clients = new();
    private readonly Task _accepting;

    public FuzzBackend()
    {
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start(512);
        Address = new Uri($"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}/");
        _accepting = AcceptAsync();
    }

    public Uri Address { get; }

    /// <summary>What arrived for one case, in order, and forgets it.</summary>
    public List<string> Take(string id) => _received.TryRemove(id, out var requests) ? requests.ToList() : [];

    private Task AcceptAsync() => AcceptLoop.RunAsync(_listener, _stop.Token, client =>
    {
        _clients.Add(client);
        _ = ServeAsync(client);
    });

    private async Task ServeAsync(TcpClient client)
    {
        using var _ = client;
        client.NoDelay = true;
        var stream = client.GetStream();
        try
        {
            var reader = new ByteReader(stream);
            var head = await reader.ReadHeadAsync(_stop.Token);
            var request = new StringBuilder(head);
            var lines = head.Split("\r\n");
            var id = lines.FirstOrDefault(line => line.StartsWith(CaseHeader, StringComparison.OrdinalIgnoreCase))?[CaseHeader.Length..].Trim() ?? "(none)";
            string? Header(string name) => lines.Skip(1)
                .FirstOrDefault(line => line.StartsWith(name + ":", StringComparison.OrdinalIgnoreCase))?[(name.Length + 1)..].Trim();
            if (Header("Content-Length") is { } length && long.TryParse(length, out var bytes) && bytes is > 0 and < 1_000_000)
            {
                request.Append(await reader.ReadAsync((int)bytes, _stop.Token));
            }
            else if (Header("Transfer-Encoding")?.EndsWith("chunked", StringComparison.OrdinalIgnoreCase) == true)
            {
                request.Append(await reader.ReadChunkedAsync(_stop.Token));
            }
            _received.GetOrAdd(id, _ => new ConcurrentQueue<string>()).Enqueue(request.ToString());

            if (Header("Sec-WebSocket-Key") is { } key && Header("Upgrade") is not null)
            {
                var accept = $"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {RawFrames.AcceptFor(key)}\r\n\r\n";
                await stream.WriteAsync(Encoding.ASCII.GetBytes(accept), _stop.Token);
                var sink = new byte[4096];
                while (await stream.ReadAsync(sink, _stop.Token) > 0)
                {
                }
                return;
            }
            await stream.WriteAsync("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"u8.ToArray(), _stop.Token);
            client.Client.Shutdown(SocketShutdown.Send);
            // Until the gateway closes its side: a reset here could reach it before the answer is read.
            var rest = new byte[256];
            while (await stream.ReadAsync(rest, _stop.Token) > 0)
            {
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException or ObjectDisposedException or EndOfStreamException or InvalidDataException)
        {
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        foreach (var client in _clients)
        {
            client.Dispose();
        }
        await _accepting;
    }

    /// <summary>Reads an HTTP/1.1 message's parts from a stream through a small buffer.</summary>
    private sealed class ByteReader(Stream stream)
    {
        private readonly byte[] _buffer = new byte[8192];
        private int _start;
        private int _end;

        private async ValueTask<byte> NextAsync(CancellationToken cancellationToken)
        {
            if (_start == _end)
            {
                _end = await stream.ReadAsync(_buffer, cancellationToken);
                _start = 0;
                if (_end == 0)
                {
                    throw new EndOfStreamException();
                }
            }
            return _buffer[_start++];
        }

        public async Task<string> ReadHeadAsync(CancellationToken cancellationToken)
        {
            var head = new List<byte>(1024);
            while (head.Count < 256 * 1024)
            {
                head.Add(await NextAsync(cancellationToken));
                if (head.Count >= 4 && head[^4] == '\r' && head[^3] == '\n' && head[^2] == '\r' && head[^1] == '\n')
                {
                    return Encoding.Latin1.GetString(head.ToArray());
                }
            }
            throw new InvalidDataException("head too long");
        }

        public async Task<string> ReadAsync(int count, CancellationToken cancellationToken)
        {
            var bytes = new byte[count];
            for (var i = 0; i < count; i++)
            {
                bytes[i] = await NextAsync(cancellationToken);
            }
            return Encoding.Latin1.GetString(bytes);
        }

        private async Task<string> ReadLineAsync(CancellationToken cancellationToken)
        {
            var line = new List<byte>();
            while (line.Count < 8192)
            {
                line.Add(await NextAsync(cancellationToken));
                if (line.Count >= 2 && line[^2] == '\r' && line[^1] == '\n')
                {
                    return Encoding.Latin1.GetString(line.ToArray());
                }
            }
            throw new InvalidDataException("line too long");
        }

        /// <summary>The chunked body as it came, up to and with its last empty line.</summary>
        public async Task<string> ReadChunkedAsync(CancellationToken cancellationToken)
        {
            var body = new StringBuilder();
            while (true)
            {
                var sizeLine = await ReadLineAsync(cancellationToken);
                body.Append(sizeLine);
                var size = Convert.ToInt32(sizeLine.Split(';')[0].Trim(), 16);
                if (size == 0)
                {
                    while (true)
                    {
                        var trailer = await ReadLineAsync(cancellationToken);
                        body.Append(trailer);
                        if (trailer == "\r\n")
                        {
                            return body.ToString();
                        }
                    }
                }
                body.Append(await ReadAsync(size + 2, cancellationToken));
            }
        }
    }
}
