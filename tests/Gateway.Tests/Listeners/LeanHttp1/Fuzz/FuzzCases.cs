using System.Text;
using CsCheck;

namespace Gateway.Tests.Listeners.LeanHttp1.Fuzz;

/// <summary>One generated client write sequence: the bytes (Latin-1), where they are cut into writes, and what was done to them.</summary>
/// <remarks><c>@ID@</c> in the bytes stands for the case's id, filled in when it runs (so the backend can file what it gets).</remarks>
internal sealed record FuzzCase(string Description, string Text, int[] Cuts, int Requests, bool Tls = false)
{
    public const string IdPlaceholder = "@ID@";

    /// <summary>One corpus line: the listener (ws or wss), the cuts, the requests, the bytes in base64, and the description after a '#'.</summary>
    public string ToCorpusLine() =>
        $"{(Tls ? "wss" : "ws")} {(Cuts.Length == 0 ? "-" : string.Join(',', Cuts))} {Requests} {Convert.ToBase64String(Encoding.Latin1.GetBytes(Text))} # {Description}";

    public static FuzzCase FromCorpusLine(string line)
    {
        var hash = line.IndexOf(" # ", StringComparison.Ordinal);
        var description = hash < 0 ? "corpus" : line[(hash + 3)..];
        var parts = (hash < 0 ? line : line[..hash]).Split(' ', StringSplitOptions.RemoveEmptyEntries);
        var cuts = parts[1] == "-" ? [] : parts[1].Split(',').Select(int.Parse).ToArray();
        return new FuzzCase(description, Encoding.Latin1.GetString(Convert.FromBase64String(parts[3])), cuts, int.Parse(parts[2]), parts[0] == "wss");
    }
}

/// <summary>The mutations of a valid WebSocket upgrade head the differential fuzz test draws from.</summary>
internal enum Mutation
{
    BareLineFeed, ObsFold, SpaceBeforeColon, Nul, HighByte, DuplicateHost, EmptyHost, MissingHost, HostForm, AbsoluteForm,
    PercentEscape, DotSegment, Query, ContentLength, TransferEncoding, DuplicateUpgrade, DuplicateConnection, DuplicateKey,
    LongHeader, LongTarget, ManyHeaders, Pipelined, ConnectionForm, UpgradeForm, VersionForm, NameCase, Method, Protocol,
    RemoveHeader, Origin, ValueWhitespace, OtherHeader,
}

internal static class FuzzCases
{
    /// <summary>Up to four mutations (each with a number that picks its variant and place), up to two cuts, one case in ten over TLS.</summary>
    public static readonly Gen<FuzzCase> Gen = CsCheck.Gen.Select(
        CsCheck.Gen.Select(CsCheck.Gen.Enum<Mutation>(), CsCheck.Gen.UInt).Array[0, 4],
        CsCheck.Gen.UInt.Array[0, 2],
        CsCheck.Gen.Int[0, 9],
        (mutations, cuts, transport) => Build(mutations, cuts) with { Tls = transport == 0 });

    private static readonly string[] Hosts =
    [
        "localhost:80", "LOCALHOST", "[::1]:8080", "127.0.0.1", "local host", "localhost:", "localhost:99999", "exa_mple.com",
        "a@b", "%6cocalhost", "localhost.", "[::1", "xn--bcher-kva.example", "localhost:0080", "[v1.x]",
    ];

    private static readonly string[] AbsoluteTargets =
        ["http://localhost/echo/x?room=1", "http://other/echo/x", "https://localhost:443/echo/x", "http://localhost", "HTTP://LOCALHOST/echo/x"];

    private static readonly string[] EscapedTargets =
        ["/ech%6F/x", "/echo/%78", "/echo/x%2Fy", "/echo/%", "/echo/%zz", "/echo/%00", "/echo/%C3%A9", "/%65cho/x", "/echo/%2e%2e/x"];

    private static readonly string[] DotTargets =
        ["/echo/../echo/x", "/./echo/x", "/echo/./x", "/echo//x", "/echo/x/..", "/..", "/echo/.%2e/x", "//echo/x", "/echo/x/."];

    private static readonly string[] Queries = ["", "?", "?a=b&c", "?room=%41", "#frag", "?x=1#f", "?a b", "??", "?é"];

    private static readonly string[] ConnectionValues =
    [
        "upgrade", "UPGRADE", "keep-alive, Upgrade", "Upgrade, close", "close, Upgrade", "Upgrade,", ",Upgrade", "Upgrade ,keep-alive",
        "keep-alive,\tUpgrade", "Upgrade\t", "Up grade", "Upgrades", "", "close", "keep-alive", "Upgrade,,close", "Upgrade, Keep-Alive",
    ];

    private static readonly string[] UpgradeValues =
        ["WebSocket", "websocket ", "websocket, h2c", "h2c, websocket", "websocket\t", "web socket", "", "websockets", "websocket/13"];

    private static readonly string[] Versions = ["13", "8", "13, 8", " 13", "", "013", "13 "];

    private static readonly string[] Methods = ["POST", "get", "PUT", "OPTIONS", "GET ", "DELETE", "G\u00e9T"];

    private static readonly string[] Protocols = ["HTTP/1.0", "HTTP/1.2", "http/1.1", "HTTP/2", "", "HTTP/1.1 ", "HTTP/1.10"];

    private static readonly string[] HighBytes = ["\u0080", "\u00e9", "\u00ff", "\u00c3\u00a9", "\u007f"];

    private static readonly string[] OtherHeaders =
    [
        "Cookie: a=b; c=d", "Authorization: Bearer x", "traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "X-Forwarded-For: 1.2.3.4", "Sec-WebSocket-Protocol: chat, superchat", "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
        "User-Agent: fuzz/1.0", "X-Forwarded-Host: elsewhere", "X-Forwarded-Proto: https", "Forwarded: for=1.2.3.4", "Expect: 100-continue",
        "Keep-Alive: timeout=5", "Proxy-Connection: keep-alive", "TE: trailers", "Max-Forwards: 1", "Accept: */*", "Via: 1.1 other",
    ];

    /// <summary>A head being mutated: the request line's parts, the header lines, the line endings, a body and what follows.</summary>
    private sealed class Draft
    {
        public string Method = "GET";
        public string Target = "/echo/x?room=1";
        public string Protocol = "HTTP/1.1";
        public string Separator = " ";
        public List<string> Lines =
        [
            "Host: localhost", "Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
            "Sec-WebSocket-Version: 13",
        ];
        public Dictionary<int, string> Endings = [];
        public string Body = "";
        public string? Next;

        public int Pick(uint p) => Lines.Count == 0 ? -1 : (int)(p % (uint)Lines.Count);

        public int Find(string name) => Lines.FindIndex(line => line.StartsWith(name + ":", StringComparison.OrdinalIgnoreCase));

        public void SetValue(string name, string value)
        {
            var at = Find(name);
            if (at < 0)
            {
                Lines.Add($"{name}: {value}");
            }
            else
            {
                Lines[at] = $"{name}: {value}";
            }
        }

        public string Render()
        {
            var text = new StringBuilder();
            // Line 0 is the request line, 1..n the fields (the case id last, never mutated), n+1 the empty line.
            var all = new List<string> { $"{Method}{Separator}{Target} {Protocol}" };
            all.AddRange(Lines);
            all.Add($"X-Fuzz-Case: {FuzzCase.IdPlaceholder}");
            all.Add("");
            for (var i = 0; i < all.Count; i++)
            {
                text.Append(all[i]).Append(Endings.TryGetValue(i, out var ending) ? ending : "\r\n");
            }
            return text.Append(Body).Append(Next).ToString();
        }
    }

    private static string Choose(string[] values, uint p) => values[p % (uint)values.Length];

    private static FuzzCase Build((Mutation Kind, uint P)[] mutations, uint[] cuts)
    {
        var draft = new Draft();
        foreach (var (kind, p) in mutations)
        {
            Apply(draft, kind, p);
        }
        var text = draft.Render();
        var positions = cuts.Select(c => (int)(1 + c % (uint)(text.Length - 1))).Distinct().Order().ToArray();
        var description = mutations.Length == 0 ? "valid" : string.Join(", ", mutations.Select(m => $"{m.Kind}({m.P % 1000})"));
        return new FuzzCase(description, text, positions, draft.Next is null ? 1 : 2);
    }

    private static void Apply(Draft d, Mutation kind, uint p)
    {
        var i = d.Pick(p);
        var q = p / 7;
        switch (kind)
        {
            case Mutation.BareLineFeed:
                d.Endings[(int)(p % (uint)(d.Lines.Count + 3))] = q % 3 == 0 ? "\r" : "\n";
                break;
            case Mutation.ObsFold when i >= 0:
                d.Lines.Insert(i + 1, (q % 2 == 0 ? " " : "\t") + "folded");
                break;
            case Mutation.SpaceBeforeColon when i >= 0 && d.Lines[i].IndexOf(':') > 0:
                d.Lines[i] = d.Lines[i].Insert(d.Lines[i].IndexOf(':'), q % 2 == 0 ? " " : "\t");
                break;
            case Mutation.Nul when i >= 0:
                d.Lines[i] = d.Lines[i].Insert((int)(q % (uint)(d.Lines[i].Length + 1)), "\0");
                break;
            case Mutation.HighByte when i >= 0:
                d.Lines[i] = d.Lines[i].Insert((int)(q % (uint)(d.Lines[i].Length + 1)), Choose(HighBytes, q));
                break;
            case Mutation.DuplicateHost:
                d.Lines.Insert((int)(q % (uint)(d.Lines.Count + 1)), q % 2 == 0 ? "Host: localhost" : "Host: other");
                break;
            case Mutation.EmptyHost:
                d.SetValue("Host", "");
                if (q % 2 == 0 && d.Find("Host") is var at and >= 0)
                {
                    d.Lines[at] = "Host:";
                }
                break;
            case Mutation.MissingHost:
                d.Lines.RemoveAll(line => line.StartsWith("Host:", StringComparison.OrdinalIgnoreCase));
                break;
            case Mutation.HostForm:
                d.SetValue("Host", Choose(Hosts, p));
                break;
            case Mutation.AbsoluteForm:
                d.Target = Choose(AbsoluteTargets, p);
                break;
            case Mutation.PercentEscape:
                d.Target = Choose(EscapedTargets, p);
                break;
            case Mutation.DotSegment:
                d.Target = Choose(DotTargets, p);
                break;
            case Mutation.Query:
                d.Target = d.Target.Split('?')[0] + Choose(Queries, p);
                break;
            case Mutation.ContentLength:
                switch (p % 6)
                {
                    case 0: d.Lines.Add("Content-Length: 0"); break;
                    case 1: d.Lines.Add("Content-Length: 5"); d.Body = "hello"; break;
                    case 2: d.Lines.Add("Content-Length: abc"); break;
                    case 3: d.Lines.Add("Content-Length: 0"); d.Lines.Add("Content-Length: 0"); break;
                    case 4: d.Lines.Add("Content-Length: -1"); break;
                    default: d.Lines.Add("Content-Length: 2, 2"); d.Body = "hi"; break;
                }
                break;
            case Mutation.TransferEncoding:
                switch (p % 5)
                {
                    case 0: d.Lines.Add("Transfer-Encoding: chunked"); d.Body = "0\r\n\r\n"; break;
                    case 1: d.Lines.Add("Transfer-Encoding: gzip"); break;
                    case 2: d.Lines.Add("Transfer-Encoding: chunked"); d.Lines.Add("Content-Length: 5"); d.Body = "0\r\n\r\n"; break;
                    case 3: d.Lines.Add("Transfer-Encoding: chunked"); d.Body = "3\r\nabc\r\n0\r\n\r\n"; break;
                    default: d.Lines.Add("Transfer-Encoding: identity, chunked"); d.Body = "0\r\n\r\n"; break;
                }
                break;
            case Mutation.DuplicateUpgrade:
                d.Lines.Add("Upgrade: " + Choose(["websocket", "h2c", "websocket, h2c"], p));
                break;
            case Mutation.DuplicateConnection:
                d.Lines.Add("Connection: " + Choose(["keep-alive", "close", "Upgrade"], p));
                break;
            case Mutation.DuplicateKey:
                d.Lines.Add("Sec-WebSocket-Key: " + Choose(["dGhlIHNhbXBsZSBub25jZQ==", "AQIDBAUGBwgJCgsMDQ4PEA=="], p));
                break;
            case Mutation.LongHeader:
                d.Lines.Add("X-Long: " + new string('a', (int)(6000 + p % 12000)));
                break;
            case Mutation.LongTarget:
                d.Target = "/echo/" + new string('b', (int)(6000 + p % 4000));
                break;
            case Mutation.ManyHeaders:
                for (var n = 0; n < 80 + p % 40; n++)
                {
                    d.Lines.Add($"X-Many-{n}: {n}");
                }
                break;
            case Mutation.Pipelined:
                d.Next = p % 2 == 0
                    ? $"GET /echo/plain HTTP/1.1\r\nHost: localhost\r\nX-Fuzz-Case: {FuzzCase.IdPlaceholder}\r\n\r\n"
                    : $"GET /echo/y HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
                      $"Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\nSec-WebSocket-Version: 13\r\nX-Fuzz-Case: {FuzzCase.IdPlaceholder}\r\n\r\n";
                break;
            case Mutation.ConnectionForm:
                d.SetValue("Connection", Choose(ConnectionValues, p));
                break;
            case Mutation.UpgradeForm:
                d.SetValue("Upgrade", Choose(UpgradeValues, p));
                break;
            case Mutation.VersionForm:
                d.SetValue("Sec-WebSocket-Version", Choose(Versions, p));
                break;
            case Mutation.NameCase when i >= 0:
                d.Lines[i] = q % 2 == 0 ? d.Lines[i].ToLowerInvariant() : d.Lines[i].ToUpperInvariant();
                break;
            case Mutation.Method:
                d.Method = Choose(Methods, p);
                break;
            case Mutation.Protocol:
                d.Protocol = Choose(Protocols, p);
                break;
            case Mutation.RemoveHeader when i >= 0:
                d.Lines.RemoveAt(i);
                break;
            case Mutation.Origin:
                d.Lines.Add("Origin: " + Choose(["http://localhost", "http://evil.example", "null", "http://localhost:1"], p));
                break;
            case Mutation.ValueWhitespace when i >= 0 && d.Lines[i].IndexOf(':') > 0:
                var colon = d.Lines[i].IndexOf(':');
                d.Lines[i] = q % 2 == 0 ? d.Lines[i] + Choose([" ", "\t", " \t"], q / 2) : d.Lines[i].Insert(colon + 1, Choose(["\t", "  ", ""], q / 2));
                break;
            case Mutation.OtherHeader:
                d.Lines.Insert((int)(q % (uint)(d.Lines.Count + 1)), Choose(OtherHeaders, p));
                break;
        }
    }
}
