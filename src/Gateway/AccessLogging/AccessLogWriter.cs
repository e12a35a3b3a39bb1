using System.Buffers;
using System.Text;
using System.Text.Json;
using System.Threading.Channels;
using Gateway.Configuration;

namespace Gateway.AccessLogging;

/// <summary>
/// Writes the access lines (<see cref="AccessLogOptions"/>): text through the logging pipeline, as today's line or as
/// the chosen fields; JSON as one object per line with the fields' names as keys, straight to the output (stdout),
/// so that log shippers get valid JSON whatever the console formatter. JSON lines are queued and written by one
/// background loop, which drops when the queue is full rather than block the thread that ended a tunnel (as the
/// console logger does).
/// </summary>
internal sealed class AccessLogWriter : IAsyncDisposable
{
    private const int QueueLength = 8192;

    private static readonly AccessLogField[] TunnelFields =
    [
        AccessLogField.Event, AccessLogField.Start, AccessLogField.Client, AccessLogField.ClientPort, AccessLogField.Path,
        AccessLogField.Route, AccessLogField.Cluster, AccessLogField.Destination, AccessLogField.Protocol,
        AccessLogField.TlsProtocol, AccessLogField.TlsCipher, AccessLogField.Subprotocol, AccessLogField.Status,
        AccessLogField.DurationSeconds, AccessLogField.MessagesFromClient, AccessLogField.BytesFromClient,
        AccessLogField.MessagesFromBackend, AccessLogField.BytesFromBackend, AccessLogField.CloseCode, AccessLogField.ClosedBy,
        AccessLogField.RateLimited,
    ];

    private static readonly AccessLogField[] RefusedFields =
    [
        AccessLogField.Event, AccessLogField.Start, AccessLogField.Client, AccessLogField.ClientPort, AccessLogField.Path,
        AccessLogField.Route, AccessLogField.Protocol, AccessLogField.TlsProtocol, AccessLogField.TlsCipher,
        AccessLogField.Status, AccessLogField.Reason,
    ];

    private readonly bool _enabled;
    private readonly bool _json;
    private readonly AccessLogField[]? _fields;
    private readonly ILogger _logger;
    private readonly Channel<string>? _queue;
    private readonly Task _writing = Task.CompletedTask;

    /// <param name="output">Where JSON lines go; stdout when null.</param>
    public AccessLogWriter(GatewayOptions options, ILoggerFactory loggers, TextWriter? output = null)
    {
        var settings = options.AccessLog;
        _enabled = settings.Enabled;
        _json = settings.Format == AccessLogFormat.Json;
        _fields = settings.Fields.Count == 0 ? null
            : settings.Fields.Select(name => Enum.Parse<AccessLogField>(name, ignoreCase: true)).ToArray();
        _logger = loggers.CreateLogger(AccessLog.Category);
        if (_enabled && _json)
        {
            _queue = Channel.CreateBounded<string>(new BoundedChannelOptions(QueueLength)
            {
                FullMode = BoundedChannelFullMode.DropWrite,
                SingleReader = true,
            });
            _writing = WriteAsync(_queue.Reader, output ?? Console.Out);
        }
    }

    /// <summary>Whether a line would be written: callers gather nothing otherwise.</summary>
    public bool Enabled => _enabled && (_json || _logger.IsEnabled(LogLevel.Information));

    internal void Write(in AccessLogEntry entry)
    {
        if (!Enabled)
        {
            return;
        }
        if (_json)
        {
            _queue!.Writer.TryWrite(Json(entry, _fields ?? (entry.Refused ? RefusedFields : TunnelFields)));
        }
        else if (_fields is not null)
        {
            var state = new SelectedFields(_fields, entry);
            _logger.Log(LogLevel.Information, entry.Refused ? AccessLog.HandshakeRefusedId : AccessLog.TunnelEndedId, state, null,
                static (state, _) => state.ToString());
        }
        else if (entry.Refused)
        {
            AccessLog.HandshakeRefused(_logger, Text(entry, AccessLogField.Start), Text(entry, AccessLogField.Client),
                Text(entry, AccessLogField.ClientPort), Text(entry, AccessLogField.Path), Text(entry, AccessLogField.Route),
                Text(entry, AccessLogField.Protocol), Text(entry, AccessLogField.TlsProtocol), Text(entry, AccessLogField.TlsCipher),
                entry.Status, Text(entry, AccessLogField.Reason));
        }
        else if (entry.RateLimited is { } limited)
        {
            AccessLog.TunnelEndedLimited(_logger, Text(entry, AccessLogField.Start), Text(entry, AccessLogField.Client),
                Text(entry, AccessLogField.ClientPort), Text(entry, AccessLogField.Path), Text(entry, AccessLogField.Route),
                Text(entry, AccessLogField.Cluster), Text(entry, AccessLogField.Destination), Text(entry, AccessLogField.Protocol),
                Text(entry, AccessLogField.TlsProtocol), Text(entry, AccessLogField.TlsCipher), Text(entry, AccessLogField.Subprotocol),
                entry.DurationSeconds, entry.MessagesFromClient, entry.BytesFromClient, entry.MessagesFromBackend,
                entry.BytesFromBackend, entry.CloseCode, Text(entry, AccessLogField.ClosedBy), limited);
        }
        else
        {
            AccessLog.TunnelEnded(_logger, Text(entry, AccessLogField.Start), Text(entry, AccessLogField.Client),
                Text(entry, AccessLogField.ClientPort), Text(entry, AccessLogField.Path), Text(entry, AccessLogField.Route),
                Text(entry, AccessLogField.Cluster), Text(entry, AccessLogField.Destination), Text(entry, AccessLogField.Protocol),
                Text(entry, AccessLogField.TlsProtocol), Text(entry, AccessLogField.TlsCipher), Text(entry, AccessLogField.Subprotocol),
                entry.DurationSeconds, entry.MessagesFromClient, entry.BytesFromClient, entry.MessagesFromBackend,
                entry.BytesFromBackend, entry.CloseCode, Text(entry, AccessLogField.ClosedBy));
        }
    }

    private static string Text(in AccessLogEntry entry, AccessLogField field) => AccessLogEntry.Text(entry.Value(field));

    private static string Json(in AccessLogEntry entry, AccessLogField[] fields)
    {
        var buffer = new ArrayBufferWriter<byte>(512);
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            foreach (var field in fields)
            {
                var name = field.ToString();
                switch (entry.Value(field))
                {
                    case null:
                        json.WriteNull(name);
                        break;
                    case string text:
                        json.WriteString(name, text);
                        break;
                    case double number:
                        json.WriteNumber(name, number);
                        break;
                    case long number:
                        json.WriteNumber(name, number);
                        break;
                    case int number:
                        json.WriteNumber(name, number);
                        break;
                    case ushort number:
                        json.WriteNumber(name, number);
                        break;
                    case var other:
                        json.WriteString(name, AccessLogEntry.Text(other));
                        break;
                }
            }
            json.WriteEndObject();
        }
        // Utf8JsonWriter escapes control characters, so the object stays on one line.
        return Encoding.UTF8.GetString(buffer.WrittenSpan) + "\n";
    }

    private static async Task WriteAsync(ChannelReader<string> lines, TextWriter output)
    {
        await Task.Yield();
        while (await lines.WaitToReadAsync().ConfigureAwait(false))
        {
            try
            {
                while (lines.TryRead(out var line))
                {
                    // One Write per line: a synchronized writer (Console.Out) never interleaves it with other output.
                    await output.WriteAsync(line).ConfigureAwait(false);
                }
                await output.FlushAsync().ConfigureAwait(false);
            }
            catch (IOException)
            {
                // stdout closed: the access log has nowhere to go; the gateway goes on.
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (_queue is null)
        {
            return;
        }
        _queue.Writer.TryComplete();
        await _writing.WaitAsync(TimeSpan.FromSeconds(2)).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
    }

    /// <summary>The chosen fields as the state of a log record: structured loggers get them by name, text gets the line.</summary>
    private sealed class SelectedFields(AccessLogField[] fields, AccessLogEntry entry) : IReadOnlyList<KeyValuePair<string, object?>>
    {
        public KeyValuePair<string, object?> this[int index] => new(fields[index].ToString(), entry.Value(fields[index]));

        public int Count => fields.Length;

        public IEnumerator<KeyValuePair<string, object?>> GetEnumerator()
        {
            for (var i = 0; i < fields.Length; i++)
            {
                yield return this[i];
            }
        }

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();

        public override string ToString()
        {
            var line = new StringBuilder();
            for (var i = 0; i < fields.Length; i++)
            {
                line.Append(i == 0 ? "" : " ").Append(AccessLogEntry.Text(entry.Value(fields[i])));
            }
            return line.ToString();
        }
    }
}
