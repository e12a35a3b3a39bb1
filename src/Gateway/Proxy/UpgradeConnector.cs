using System.Buffers;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Gateway.Http;

namespace Gateway.Proxy;

/// <summary>
/// Opens the backend leg of a WebSocket (an HTTP/1.1 upgrade to a plain-http destination) on a socket of its own,
/// and hands every other request to SocketsHttpHandler. Written by hand because SocketsHttpHandler keeps an upgraded
/// connection's HttpConnection, with its two 4 KiB buffers that an upgraded stream no longer uses, for the tunnel's
/// whole life (8 of the 27 KiB of managed heap per idle tunnel, bench/RESULTS.md), and walks every upgrade through
/// its connection pool, which exists for connections that upgrades never return to.
/// </summary>
/// <remarks>
/// The request head is written as SocketsHttpHandler would write it (request line, Host first, then the headers
/// YARP set); the response head is parsed into an <see cref="HttpResponseMessage"/>. A 101's content is the socket's
/// stream (with whatever arrived after the head in front of it); any other status gets its body read whole, framed
/// by Content-Length, chunked transfer coding or the end of the connection (RFC 9112 section 6.3), up to
/// <see cref="MaxErrorBodyBytes"/>.
/// </remarks>
internal sealed class UpgradeConnector : DelegatingHandler
{
    /// <summary>SocketsHttpHandler's default response-header limit (64 KiB).</summary>
    internal const int MaxResponseHeadBytes = 64 * 1024;

    /// <summary>What a request or response head is written to or read into first; a longer one gets a larger buffer.</summary>
    private const int HeadBufferLength = 4096;

    /// <summary>A refusal's body (404, 403, 426...) is passed on to the client; a WebSocket backend's are short.</summary>
    internal const int MaxErrorBodyBytes = 1024 * 1024;

    /// <summary>Interim (1xx) answers skipped before the final one; a backend that sends more is broken.</summary>
    internal const int MaxInterimResponses = 16;

    private static readonly byte[] NoLocalPortBody = "The gateway has no local port left to reach the backend; try again later.\n"u8.ToArray();

    private readonly BackendSockets _sockets;
    private readonly SourceAddressExhaustion? _exhaustion;

    public UpgradeConnector(HttpMessageHandler inner) : this(inner, SourceAddresses.None, exhaustion: null)
    {
    }

    /// <param name="sources">Where backend sockets are bound before they connect (<c>Gateway:Upstream:SourceAddresses</c>).</param>
    /// <param name="exhaustion">Counts and reports handshakes refused for lack of a local port.</param>
    public UpgradeConnector(HttpMessageHandler inner, SourceAddresses sources, SourceAddressExhaustion? exhaustion) : base(inner)
    {
        _sockets = new BackendSockets(sources);
        _exhaustion = exhaustion;
    }

    protected override Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, CancellationToken cancellationToken) =>
        IsPlainUpgrade(request) ? SendUpgradeAsync(request, cancellationToken) : base.SendAsync(request, cancellationToken);

    private static bool IsPlainUpgrade(HttpRequestMessage request) =>
        request.RequestUri is { Scheme: "http", IsAbsoluteUri: true }
        && request.Version == HttpVersion.Version11
        && request.Content is null
        && request.Headers.NonValidated.Contains("Upgrade");

    private async Task<HttpResponseMessage> SendUpgradeAsync(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        var uri = request.RequestUri!;
        Socket socket;
        try
        {
            socket = await _sockets.ConnectAsync(uri, cancellationToken).ConfigureAwait(false);
        }
        catch (LocalPortsExhaustedException ex)
        {
            _exhaustion?.Report(uri.Authority, _sockets.Sources.Description, ex.Message);
            return NoLocalPort(request);
        }
        // Writes to the backend go to its socket at once (DirectSocketStream), the request head's included.
        var stream = new DirectSocketStream(socket, ownsSocket: true);
        byte[]? buffer = null;
        try
        {
            // Pooled buffers held across no wait for the backend: the head's is given back once it is sent, and the
            // answer's is taken once the answer is there (a zero-byte read waits for it without a buffer). A buffer held
            // while the backend answers made a burst of a thousand handshakes in flight miss the pool and allocate 4 KB
            // each (about a fifth of what a connection allocated); taken and given back on one thread, the pool's
            // per-thread slot serves them. Pooled also because a send that had to wait leaves a reference to its buffer in
            // the socket's send operation for as long as the tunnel lives.
            buffer = ArrayPool<byte>.Shared.Rent(HeadBufferLength);
            var headLength = WriteRequestHead(request, uri, ref buffer);
            await stream.WriteAsync(buffer.AsMemory(0, headLength), cancellationToken).ConfigureAwait(false);
            ArrayPool<byte>.Shared.Return(buffer);
            buffer = null;
            await stream.ReadAsync(Memory<byte>.Empty, cancellationToken).ConfigureAwait(false);
            buffer = ArrayPool<byte>.Shared.Rent(HeadBufferLength);

            HttpResponseMessage response;
            var filled = 0;
            var interim = 0;
            while (true)
            {
                var (read, headEnd, total) = await ReadHeadAsync(stream, buffer, filled, cancellationToken).ConfigureAwait(false);
                if (!ReferenceEquals(read, buffer))
                {
                    ArrayPool<byte>.Shared.Return(buffer);
                    buffer = read;
                }
                headLength = headEnd;
                filled = total;
                response = ParseHead(buffer.AsSpan(0, headLength), request);
                if ((int)response.StatusCode is >= 200 or 101)
                {
                    break;
                }
                // An interim answer (100 Continue, 103 Early Hints...) is not the final one: RFC 9110 section 15.2 lets a
                // client that did not ask for it ignore it, and the 101 or the refusal follows.
                response.Dispose();
                if (++interim > MaxInterimResponses)
                {
                    throw new InvalidDataException($"more than {MaxInterimResponses} interim responses before the final one");
                }
                buffer.AsSpan(headLength, filled - headLength).CopyTo(buffer);
                filled -= headLength;
            }
            var leftover = buffer.AsSpan(headLength, filled - headLength).ToArray();
            if (response.StatusCode == HttpStatusCode.SwitchingProtocols)
            {
                ReplaceContent(response, new UpgradedContent(leftover.Length == 0 ? stream : new PrefixedStream(leftover, stream)));
                stream = null!; // owned by the response now
                return response;
            }
            var body = await ReadBodyAsync(stream, response, leftover, request.Method == HttpMethod.Head, cancellationToken).ConfigureAwait(false);
            ReplaceContent(response, new ByteArrayContent(body));
            if (request.Method != HttpMethod.Head)
            {
                // Re-framed (RFC 9112 section 7.1.3): the client gets the decoded body with its length.
                response.Content.Headers.ContentLength = body.Length;
            }
            return response;
        }
        catch (Exception ex) when (ex is IOException or SocketException or InvalidDataException)
        {
            throw new HttpRequestException(HttpRequestError.InvalidResponse,
                $"The WebSocket upgrade to {uri.Authority} failed: {ex.Message}", ex);
        }
        finally
        {
            if (buffer is not null)
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
            if (stream is not null)
            {
                await stream.DisposeAsync().ConfigureAwait(false);
            }
        }
    }

    /// <summary>
    /// The gateway's own failure, answered as such: a response rather than an exception, so YARP records no forwarding
    /// error, passive health does not count it against the destination and the connect retry does not mark it down.
    /// </summary>
    private static HttpResponseMessage NoLocalPort(HttpRequestMessage request)
    {
        var content = new ByteArrayContent(NoLocalPortBody);
        content.Headers.ContentType = new("text/plain") { CharSet = "utf-8" };
        // Set, not computed: YARP copies the headers that are there, and the length is only there once asked for.
        content.Headers.ContentLength = NoLocalPortBody.Length;
        return new HttpResponseMessage(HttpStatusCode.BadGateway) { RequestMessage = request, Content = content };
    }

    /// <summary>
    /// The request line and headers into <paramref name="buffer"/> (a pooled one, replaced by a larger one when needed):
    /// Host first (RFC 9112 section 3.2), then what YARP set, Latin-1 as on the wire. Returns the length.
    /// </summary>
    private static int WriteRequestHead(HttpRequestMessage request, Uri uri, ref byte[] buffer)
    {
        var head = new HeadWriter(buffer);
        try
        {
            WriteHeadFields(ref head, request, uri);
            return head.Length;
        }
        finally
        {
            buffer = head.Buffer; // the caller returns whichever buffer holds the head, written or not
        }
    }

    private static void WriteHeadFields(ref HeadWriter head, HttpRequestMessage request, Uri uri)
    {
        head.Append(request.Method.Method);
        head.Append(" ");
        // Read from the address string rather than from the fresh Uri, whose first PathAndQuery parses it all (RequestTarget).
        head.Append(RequestTarget.PathAndQuery(uri));
        head.Append(" HTTP/1.1\r\nHost: ");
        head.Append(request.Headers.Host is { } host ? host : RequestTarget.Authority(uri));
        head.Append("\r\n");
        foreach (var (name, values) in request.Headers.NonValidated)
        {
            if (name.Equals("Host", StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }
            // Repeated values of a list header go on one line, as SocketsHttpHandler sends them.
            head.Append(name);
            head.Append(": ");
            var first = true;
            foreach (var value in values)
            {
                if (value.AsSpan().IndexOfAny('\r', '\n') >= 0)
                {
                    throw new HttpRequestException(HttpRequestError.Unknown, $"The {name} header holds a line break");
                }
                if (!first)
                {
                    head.Append(", ");
                }
                head.Append(value);
                first = false;
            }
            head.Append("\r\n");
        }
        head.Append("\r\n");
    }

    /// <summary>Latin-1 text appended to a pooled buffer that doubles when full.</summary>
    private struct HeadWriter(byte[] buffer)
    {
        public byte[] Buffer = buffer;
        public int Length;

        public void Append(ReadOnlySpan<char> text)
        {
            if (Length + text.Length > Buffer.Length)
            {
                var larger = ArrayPool<byte>.Shared.Rent(Math.Max(Buffer.Length * 2, Length + text.Length));
                Buffer.AsSpan(0, Length).CopyTo(larger);
                ArrayPool<byte>.Shared.Return(Buffer);
                Buffer = larger;
            }
            Length += Encoding.Latin1.GetBytes(text, Buffer.AsSpan(Length));
        }
    }

    /// <summary>
    /// Reads until the blank line that ends the head; returns the buffer (a larger one when the head outgrew it), the
    /// head's length and the bytes read in all (<paramref name="filled"/> bytes are already in the buffer).
    /// </summary>
    private static async Task<(byte[] Buffer, int HeadLength, int Filled)> ReadHeadAsync(NetworkStream stream, byte[] buffer, int filled,
        CancellationToken cancellationToken)
    {
        var callers = buffer; // the caller's to return; only the larger ones rented here are returned here
        // Bytes already there (what followed an interim answer) may hold the whole next head.
        if (filled > 0 && HttpSyntax.IndexOfHeadEnd(buffer.AsSpan(0, filled)) is var held and >= 0)
        {
            return (buffer, held + HttpSyntax.HeadEnd.Length, filled);
        }
        try
        {
            while (true)
            {
                if (filled == buffer.Length)
                {
                    if (buffer.Length >= MaxResponseHeadBytes)
                    {
                        throw new InvalidDataException($"the response head is longer than {MaxResponseHeadBytes} bytes");
                    }
                    var larger = ArrayPool<byte>.Shared.Rent(buffer.Length * 2);
                    buffer.AsSpan(0, filled).CopyTo(larger);
                    if (!ReferenceEquals(buffer, callers))
                    {
                        ArrayPool<byte>.Shared.Return(buffer);
                    }
                    buffer = larger;
                }
                var read = await stream.ReadAsync(buffer.AsMemory(filled), cancellationToken).ConfigureAwait(false);
                if (read == 0)
                {
                    throw new IOException("the backend closed the connection before a complete response head");
                }
                var searchFrom = Math.Max(0, filled - (HttpSyntax.HeadEnd.Length - 1));
                filled += read;
                var end = HttpSyntax.IndexOfHeadEnd(buffer.AsSpan(searchFrom, filled - searchFrom));
                if (end >= 0)
                {
                    return (buffer, searchFrom + end + HttpSyntax.HeadEnd.Length, filled);
                }
            }
        }
        catch when (!ReferenceEquals(buffer, callers))
        {
            ArrayPool<byte>.Shared.Return(buffer);
            throw;
        }
    }

    /// <summary>Status line and header fields (RFC 9112 sections 4 and 5) into a response whose content holds the content headers.</summary>
    private static HttpResponseMessage ParseHead(ReadOnlySpan<byte> head, HttpRequestMessage request)
    {
        var lineEnd = head.IndexOf(HttpSyntax.Crlf);
        var status = head[..lineEnd];
        if (!HttpSyntax.TryParseStatusLine(status, out var minorVersion, out var code, out var reason))
        {
            var shown = Encoding.Latin1.GetString(status.Length > 80 ? status[..80] : status);
            throw new InvalidDataException($"not an HTTP/1.x status line: '{shown}'");
        }
        var response = new HttpResponseMessage((HttpStatusCode)code)
        {
            RequestMessage = request,
            Version = minorVersion == (byte)'0' ? HttpVersion.Version10 : HttpVersion.Version11,
            ReasonPhrase = reason.IsEmpty ? null : ReasonPhrase(code, reason),
            Content = new HeadersOnlyContent(),
        };
        var rest = head[(lineEnd + 2)..];
        while ((lineEnd = rest.IndexOf(HttpSyntax.Crlf)) > 0)
        {
            var line = rest[..lineEnd];
            rest = rest[(lineEnd + 2)..];
            if (!HttpSyntax.TrySplitFieldLine(line, out var nameBytes, out var valueBytes))
            {
                var shown = Encoding.Latin1.GetString(line.Length > 80 ? line[..80] : line);
                throw new InvalidDataException($"malformed response header line '{shown}'");
            }
            var name = Encoding.Latin1.GetString(nameBytes);
            var value = Encoding.Latin1.GetString(valueBytes);
            if (!response.Headers.TryAddWithoutValidation(name, value))
            {
                response.Content.Headers.TryAddWithoutValidation(name, value);
            }
        }
        return response;
    }

    /// <summary>The reason phrase as sent; the usual one for a 101 without a new string per tunnel.</summary>
    private static string ReasonPhrase(int code, ReadOnlySpan<byte> reason) =>
        code == 101 && reason.SequenceEqual("Switching Protocols"u8) ? "Switching Protocols" : Encoding.Latin1.GetString(reason);

    /// <summary>Gives the response its real content, with the content headers the head carried.</summary>
    private static void ReplaceContent(HttpResponseMessage response, HttpContent content)
    {
        foreach (var (name, values) in response.Content.Headers.NonValidated)
        {
            content.Headers.TryAddWithoutValidation(name, values);
        }
        response.Content = content;
    }

    /// <summary>A refusal's body, framed as RFC 9112 section 6.3 says; the connection is closed after it.</summary>
    private static async Task<byte[]> ReadBodyAsync(NetworkStream stream, HttpResponseMessage response, byte[] leftover, bool isHead, CancellationToken cancellationToken)
    {
        var code = (int)response.StatusCode;
        if (isHead || code is 204 or 304 || code < 200)
        {
            return [];
        }
        var source = new PrefixedStream(leftover, stream);
        if (response.Headers.TransferEncodingChunked == true)
        {
            response.Headers.TransferEncoding.Clear();
            return await ChunkedBody.ReadAsync(source, MaxErrorBodyBytes, cancellationToken).ConfigureAwait(false);
        }
        if (response.Content.Headers.ContentLength is { } length)
        {
            if (length > MaxErrorBodyBytes)
            {
                throw new InvalidDataException($"a {code} response body of {length} bytes is over the {MaxErrorBodyBytes}-byte limit");
            }
            var body = new byte[length];
            await source.ReadExactlyAsync(body, cancellationToken).ConfigureAwait(false);
            return body;
        }
        using var all = new MemoryStream();
        var chunk = new byte[4096];
        int read;
        while ((read = await source.ReadAsync(chunk, cancellationToken).ConfigureAwait(false)) > 0)
        {
            if (all.Length + read > MaxErrorBodyBytes)
            {
                throw new InvalidDataException($"a {code} response body is over the {MaxErrorBodyBytes}-byte limit");
            }
            all.Write(chunk, 0, read);
        }
        return all.ToArray();
    }

    /// <summary>Holds the response's content headers while its body is read; its length is only what the header says.</summary>
    private sealed class HeadersOnlyContent : HttpContent
    {
        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) => Task.CompletedTask;

        protected override bool TryComputeLength(out long length)
        {
            length = 0;
            return false;
        }
    }
}
