using Gateway.Configuration;
using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Security.Authentication;
using Microsoft.AspNetCore.Connections.Features;

namespace Gateway.AccessLogging;

/// <summary>The values of one access line, gathered when the tunnel ends or the handshake is refused.</summary>
internal struct AccessLogEntry
{
    public bool Refused;
    public DateTimeOffset Start;
    public IPAddress? Client;
    public int ClientPort;
    public string? Path;
    public string? Route;
    public string? Cluster;
    public string? Destination;
    public string? Protocol;
    public string? Subprotocol;
    public SslProtocols TlsProtocol;
    public TlsCipherSuite? TlsCipher;
    public int Status;
    public string? Reason;
    public double DurationSeconds;
    public long MessagesFromClient;
    public long BytesFromClient;
    public long MessagesFromBackend;
    public long BytesFromBackend;
    public ushort CloseCode;
    public string? ClosedBy;

    /// <summary>What the rate limits did to the tunnel (<c>close</c>, <c>hold:N</c>, <c>drop:N</c>); null when nothing.</summary>
    public string? RateLimited;

    /// <summary>
    /// The request's path as sent on the wire (escaped, so no space or line break reaches a log line), without the
    /// query string: tokens travel there.
    /// </summary>
    public static string PathOf(HttpRequest request) => request.PathBase.Add(request.Path).ToUriComponent();

    /// <summary>TLS as the connection's handshake settled it; nothing for plain ws.</summary>
    public static (SslProtocols Protocol, TlsCipherSuite? Cipher) TlsOf(HttpContext context) =>
        context.Features.Get<ITlsHandshakeFeature>() is { } tls ? (tls.Protocol, tls.NegotiatedCipherSuite) : (SslProtocols.None, null);

    /// <summary>The field's value, or null when it is absent (empty) or does not apply to this line.</summary>
    public readonly object? Value(AccessLogField field) => RawValue(field) is { } value && value is not string { Length: 0 } ? value : null;

    private readonly object? RawValue(AccessLogField field) => field switch
    {
        AccessLogField.Event => Refused ? "refused" : "tunnel",
        AccessLogField.Start => Start.ToString("O", CultureInfo.InvariantCulture),
        AccessLogField.Client => Client is null ? null : (Client.IsIPv4MappedToIPv6 ? Client.MapToIPv4() : Client).ToString(),
        // A forwarder's X-Forwarded-For may name an address without a port: 0 then.
        AccessLogField.ClientPort => Client is null || ClientPort == 0 ? null : ClientPort,
        AccessLogField.Path => Path,
        AccessLogField.Route => Route,
        AccessLogField.Cluster => Cluster,
        AccessLogField.Destination => Destination,
        AccessLogField.Protocol => Protocol,
        AccessLogField.Subprotocol => Subprotocol,
        AccessLogField.TlsProtocol => TlsProtocol == SslProtocols.None ? null : TlsProtocol.ToString(),
        AccessLogField.TlsCipher => TlsCipher?.ToString(),
        AccessLogField.Status => Status == 0 ? null : Status,
        AccessLogField.Reason => Reason,
        AccessLogField.DurationSeconds => Refused ? null : Math.Round(DurationSeconds, 3),
        AccessLogField.MessagesFromClient => Refused ? null : MessagesFromClient,
        AccessLogField.BytesFromClient => Refused ? null : BytesFromClient,
        AccessLogField.MessagesFromBackend => Refused ? null : MessagesFromBackend,
        AccessLogField.BytesFromBackend => Refused ? null : BytesFromBackend,
        AccessLogField.CloseCode => Refused ? null : CloseCode,
        AccessLogField.ClosedBy => Refused ? null : ClosedBy,
        AccessLogField.RateLimited => Refused ? null : RateLimited,
        _ => null,
    };

    public static string Text(object? value) => value switch
    {
        null => "-",
        double seconds => seconds.ToString("0.000", CultureInfo.InvariantCulture),
        IFormattable formattable => formattable.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "-",
    };
}
