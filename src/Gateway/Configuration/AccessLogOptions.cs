namespace Gateway.Configuration;

/// <summary><c>Gateway:AccessLog</c>: whether the access log is written, in which format and with which fields.</summary>
internal sealed class AccessLogOptions
{
    /// <summary>Off: no access line at all, whatever the log levels say.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>
    /// <see cref="AccessLogFormat.Text"/>: a line through the logging pipeline (category <c>Gateway.AccessLog</c>);
    /// <see cref="AccessLogFormat.Json"/>: one JSON object per line straight to stdout, whatever the console formatter.
    /// </summary>
    public AccessLogFormat Format { get; set; } = AccessLogFormat.Text;

    /// <summary>The fields and their order (names of <see cref="AccessLogField"/>). Empty: each line's default set.</summary>
    public List<string> Fields { get; set; } = new();

    internal static void Validate(AccessLogOptions options, string key)
    {
        for (var i = 0; i < options.Fields.Count; i++)
        {
            var name = options.Fields[i];
            // Numbers parse as enum values: only names are fields.
            if (string.IsNullOrEmpty(name) || char.IsAsciiDigit(name[0]) || name[0] == '-'
                || !Enum.TryParse<AccessLogField>(name, ignoreCase: true, out _))
            {
                throw new Configuration.GatewayConfigurationException($"{key}:{nameof(Fields)}:{i}",
                    $"'{name}' is not an access log field (one of: {string.Join(", ", Enum.GetNames<AccessLogField>())})");
            }
        }
    }
}

internal enum AccessLogFormat
{
    Text,
    Json,
}

/// <summary>
/// What an access line can say. A field that does not apply to a line (the byte counts of a refused handshake, the
/// refusal reason of a tunnel) is <c>-</c> in text and <c>null</c> in JSON.
/// </summary>
internal enum AccessLogField
{
    /// <summary><c>tunnel</c> or <c>refused</c>.</summary>
    Event,
    Start,
    Client,
    ClientPort,
    /// <summary>The request path; never the query string, where tokens travel.</summary>
    Path,
    Route,
    Cluster,
    Destination,
    Protocol,
    Subprotocol,
    TlsProtocol,
    TlsCipher,
    Status,
    Reason,
    DurationSeconds,
    MessagesFromClient,
    BytesFromClient,
    MessagesFromBackend,
    BytesFromBackend,
    CloseCode,
    ClosedBy,
    /// <summary>What the rate limits did: <c>close</c>, <c>hold:N</c> (reading waited N times), <c>drop:N</c> (N messages dropped).</summary>
    RateLimited,
}
