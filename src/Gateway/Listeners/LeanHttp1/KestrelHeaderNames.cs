using System.Collections.Frozen;
using System.Reflection;
using System.Text;
using Microsoft.Extensions.Primitives;
using Microsoft.Net.Http.Headers;

namespace Gateway.Listeners.LeanHttp1;

/// <summary>
/// Request header names and their order as Kestrel's HTTP/1.1 parser hands them to the application: YARP copies the
/// headers in that order, so the bytes a backend gets depend on it, and the lean path must give the same.
/// </summary>
/// <remarks>
/// Kestrel keeps the headers it knows in fields enumerated in a fixed order (<see cref="KnownOrder"/>, from its generated
/// <c>HttpRequestHeaders</c>), the others after them in arrival order; a name equal, ignoring case, to one of
/// <see cref="HeaderNames"/> is given that spelling, any other name is kept as the client wrote it. A test compares
/// this with a live Kestrel, so that a runtime that changes it fails there first.
/// </remarks>
internal static class KestrelHeaderNames
{
    public static readonly string[] KnownOrder =
    [
        "Accept", "Connection", "Host", "User-Agent", "Accept-Charset", "Accept-Encoding", "Accept-Language",
        "Access-Control-Request-Headers", "Access-Control-Request-Method", "Alt-Used", "Authorization", "baggage", "Cache-Control",
        "Content-Type", "Cookie", "Correlation-Context", "Date", "Expect", "From", "Grpc-Accept-Encoding", "Grpc-Encoding",
        "Grpc-Timeout", "If-Match", "If-Modified-Since", "If-None-Match", "If-Range", "If-Unmodified-Since", "Keep-Alive",
        "Max-Forwards", "Origin", "Pragma", "Proxy-Authorization", "Range", "Referer", "Request-Id", "TE", "traceparent",
        "tracestate", "Translate", "Upgrade", "Upgrade-Insecure-Requests", "Via", "Warning",
    ];

    private static readonly FrozenDictionary<string, int> Ranks =
        KnownOrder.Select((name, rank) => (name, rank)).ToFrozenDictionary(x => x.name, x => x.rank, StringComparer.OrdinalIgnoreCase);

    // The framework's own string instances where there is one (no string per request for them).
    private static readonly FrozenDictionary<string, string> Canonical = typeof(HeaderNames)
        .GetFields(BindingFlags.Public | BindingFlags.Static)
        .Where(field => field.FieldType == typeof(string))
        .Select(field => (string)field.GetValue(null)!)
        .Concat(KnownOrder)
        .DistinctBy(name => name, StringComparer.OrdinalIgnoreCase)
        .ToFrozenDictionary(name => name, name => name, StringComparer.OrdinalIgnoreCase);

    private static readonly FrozenDictionary<string, string>.AlternateLookup<ReadOnlySpan<char>> CanonicalBySpan =
        Canonical.GetAlternateLookup<ReadOnlySpan<char>>();

    /// <summary>The name as Kestrel spells it (<paramref name="name"/> is ASCII, a token).</summary>
    public static string Name(ReadOnlySpan<byte> name)
    {
        if (name.Length <= 64)
        {
            Span<char> chars = stackalloc char[name.Length];
            Encoding.ASCII.GetChars(name, chars);
            if (CanonicalBySpan.TryGetValue(chars, out var known))
            {
                return known;
            }
            return new string(chars);
        }
        return Encoding.ASCII.GetString(name);
    }

    /// <summary>Where Kestrel enumerates a header: its known ones by this rank, the others after them.</summary>
    public static int Rank(string name) => Ranks.TryGetValue(name, out var rank) ? rank : int.MaxValue;

    /// <summary>
    /// The header fields of a head, in arrival order, as Kestrel's collection: sorted by rank (stable: arrival order among
    /// equals), repeated names joined. Sorted before the dictionary is built, so only one dictionary is made.
    /// </summary>
    public static HeaderDictionary ToHeaders(Span<Field> fields)
    {
        for (var i = 1; i < fields.Length; i++)
        {
            var field = fields[i];
            var j = i - 1;
            while (j >= 0 && fields[j].Rank > field.Rank)
            {
                fields[j + 1] = fields[j];
                j--;
            }
            fields[j + 1] = field;
        }
        var headers = new HeaderDictionary(fields.Length);
        foreach (var field in fields)
        {
            headers[field.Name] = headers.TryGetValue(field.Name, out var existing) ? StringValues.Concat(existing, field.Value) : field.Value;
        }
        return headers;
    }

    /// <summary>One header line of a head: its name as Kestrel spells it, its rank, its value.</summary>
    public readonly record struct Field(int Rank, string Name, string Value);
}
