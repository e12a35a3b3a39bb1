using System.Buffers;
using System.Globalization;
using System.IO.Pipelines;
using System.Text;
using Gateway.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.WebUtilities;
using Microsoft.Extensions.Primitives;

namespace Gateway.Listeners.LeanHttp1;

// The answer: a 101 written as the upgrade happens, anything else (a refusal, a 502) buffered and written whole with its
// length when the pipeline returns. Written by hand because the framework's HTTP/1.1 response writer is Kestrel's own.
internal sealed partial class LeanExchange
{
    private List<(Func<object, Task> Callback, object State)>? _onStarting;
    private List<(Func<object, Task> Callback, object State)>? _onCompleted;
    private IHeaderDictionary? _responseHeaders;
    private MemoryStream? _body;
    private PipeWriter? _bodyWriter;

    public bool Upgraded { get; private set; }

    /// <summary>The answer said <c>Connection: close</c>, or the pipeline failed: no further request on this connection.</summary>
    public bool CloseAfterResponse { get; private set; }

    // ---- IHttpResponseFeature ----

    public int StatusCode { get; set; } = StatusCodes.Status200OK;

    public string? ReasonPhrase { get; set; }

    IHeaderDictionary IHttpResponseFeature.Headers
    {
        get => _responseHeaders ??= new HeaderDictionary();
        set => _responseHeaders = value;
    }

    Stream IHttpResponseFeature.Body
    {
        get => BodyStream;
        set => throw new NotSupportedException("the lean HTTP/1.1 path does not take a replaced response body");
    }

    public bool HasStarted { get; private set; }

    public void OnStarting(Func<object, Task> callback, object state) => (_onStarting ??= []).Add((callback, state));

    public void OnCompleted(Func<object, Task> callback, object state) => (_onCompleted ??= []).Add((callback, state));

    // ---- IHttpResponseBodyFeature: a refusal's body is short (YARP passes the backend's on), so it is buffered ----

    private MemoryStream BodyStream => _body ??= new MemoryStream();

    Stream IHttpResponseBodyFeature.Stream => BodyStream;

    PipeWriter IHttpResponseBodyFeature.Writer => _bodyWriter ??= PipeWriter.Create(BodyStream, new StreamPipeWriterOptions(leaveOpen: true));

    void IHttpResponseBodyFeature.DisableBuffering()
    {
    }

    Task IHttpResponseBodyFeature.StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    Task IHttpResponseBodyFeature.SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken) =>
        throw new NotSupportedException("the lean HTTP/1.1 path answers WebSocket handshakes only");

    async Task IHttpResponseBodyFeature.CompleteAsync()
    {
        if (_bodyWriter is not null)
        {
            await _bodyWriter.FlushAsync().ConfigureAwait(false);
        }
    }

    // ---- IHttpUpgradeFeature ----

    public bool IsUpgradableRequest => !Upgraded;

    public async Task<Stream> UpgradeAsync()
    {
        if (Upgraded || HasStarted)
        {
            throw new InvalidOperationException("the request was already upgraded or answered");
        }
        var headers = ((IHttpResponseFeature)this).Headers;
        // Kestrel's own Connection header on a 101 (RFC 9110 section 7.8).
        headers.Connection = "Upgrade";
        await FireOnStartingAsync().ConfigureAwait(false);
        if (InvalidHeader(headers) is { } invalid)
        {
            // Nothing is sent: the forwarder sees the upgrade fail and answers 502, as when Kestrel refused the header.
            Log.InvalidResponseHeader(_logger, invalid);
            throw new InvalidOperationException($"invalid response header {invalid}");
        }
        Upgraded = true;
        StatusCode = StatusCodes.Status101SwitchingProtocols;
        var output = _connection.Transport.Output;
        WriteHead(output, StatusCode, ReasonPhrase, headers, contentLength: null, close: false);
        HasStarted = true;
        // What the backend answered was copied into these; nothing reads them once the 101 is out.
        _responseHeaders = null;
        await output.FlushAsync().ConfigureAwait(false);
        return new ClientTransportStream(_connection.Transport);
    }

    // ---- the end of the request ----

    /// <summary>After the pipeline: an answer other than a 101 is written whole (with its length), then the completion callbacks run.</summary>
    public async Task FinishAsync()
    {
        try
        {
            if (!HasStarted)
            {
                await FireOnStartingAsync().ConfigureAwait(false);
                if (_bodyWriter is not null)
                {
                    await _bodyWriter.FlushAsync().ConfigureAwait(false);
                }
                var headers = ((IHttpResponseFeature)this).Headers;
                if (InvalidHeader(headers) is { } invalid)
                {
                    Log.InvalidResponseHeader(_logger, invalid);
                    Fail();
                    headers = ((IHttpResponseFeature)this).Headers;
                }
                CloseAfterResponse |= HttpSyntax.ListContains(headers.Connection, "close");
                var output = _connection.Transport.Output;
                var length = _body is null ? 0 : (int)_body.Length;
                WriteHead(output, StatusCode, ReasonPhrase, headers, length, CloseAfterResponse);
                if (length > 0)
                {
                    output.Write(_body!.GetBuffer().AsSpan(0, length));
                }
                HasStarted = true;
                await output.FlushAsync().ConfigureAwait(false);
            }
        }
        finally
        {
            await FireOnCompletedAsync().ConfigureAwait(false);
        }
    }

    /// <summary>The pipeline threw: a 500 if nothing was sent yet (and no further request), otherwise the connection is cut.</summary>
    public void Fail()
    {
        if (HasStarted)
        {
            Abort();
            return;
        }
        StatusCode = StatusCodes.Status500InternalServerError;
        CloseAfterResponse = true;
        ReasonPhrase = null;
        _responseHeaders = null;
        _body = null;
        _bodyWriter = null;
    }

    private async Task FireOnStartingAsync()
    {
        if (_onStarting is { } callbacks)
        {
            _onStarting = null;
            for (var i = callbacks.Count - 1; i >= 0; i--)
            {
                await callbacks[i].Callback(callbacks[i].State).ConfigureAwait(false);
            }
        }
    }

    private async Task FireOnCompletedAsync()
    {
        if (_onCompleted is not { } callbacks)
        {
            return;
        }
        _onCompleted = null;
        for (var i = callbacks.Count - 1; i >= 0; i--)
        {
            try
            {
                await callbacks[i].Callback(callbacks[i].State).ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                // As Kestrel: a failing completion callback is logged and the others still run.
                Log.PipelineFailed(_logger, ex);
            }
        }
    }

    /// <summary>
    /// The first header Kestrel would refuse to send: a name that is not a token, or a value with a control character
    /// (CR and LF above all: a header must not start another) or a non-ASCII one (Kestrel's default encoding).
    /// </summary>
    private static string? InvalidHeader(IHeaderDictionary headers)
    {
        foreach (var (name, values) in headers)
        {
            if (!HttpSyntax.IsToken(name))
            {
                return "name";
            }
            foreach (var value in values)
            {
                if (!HttpSyntax.IsAsciiFieldValue(value))
                {
                    return name;
                }
            }
        }
        return null;
    }

    /// <summary>Status line and headers, ASCII (checked above), Date last as Kestrel sends it.</summary>
    private static void WriteHead(PipeWriter output, int status, string? reason, IHeaderDictionary headers, int? contentLength, bool close)
    {
        WriteAscii(output, "HTTP/1.1 ");
        WriteAscii(output, status.ToString(CultureInfo.InvariantCulture));
        WriteAscii(output, " ");
        WriteAscii(output, reason ?? ReasonPhrases.GetReasonPhrase(status));
        WriteAscii(output, "\r\n");
        foreach (var (name, values) in headers)
        {
            if (name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase) || name.Equals("Date", StringComparison.OrdinalIgnoreCase)
                || (close && name.Equals("Connection", StringComparison.OrdinalIgnoreCase)))
            {
                continue;
            }
            foreach (var value in values)
            {
                WriteAscii(output, name);
                WriteAscii(output, ": ");
                WriteAscii(output, value ?? string.Empty);
                WriteAscii(output, "\r\n");
            }
        }
        if (contentLength is { } length && status >= 200 && status is not (StatusCodes.Status204NoContent or StatusCodes.Status304NotModified))
        {
            WriteAscii(output, "Content-Length: ");
            WriteAscii(output, length.ToString(CultureInfo.InvariantCulture));
            WriteAscii(output, "\r\n");
        }
        if (close)
        {
            WriteAscii(output, "Connection: close\r\n");
        }
        WriteAscii(output, "Date: ");
        WriteAscii(output, DateTimeOffset.UtcNow.ToString("r", CultureInfo.InvariantCulture));
        WriteAscii(output, "\r\n\r\n");
    }

    private static void WriteAscii(PipeWriter output, string text)
    {
        var span = output.GetSpan(text.Length);
        output.Advance(Encoding.ASCII.GetBytes(text, span));
    }
}
