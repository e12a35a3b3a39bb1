using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Fleet;

/// <summary>
/// One gateway process of a fleet, started from the file every replica shares: its public listener and its admin
/// listener are on ports the system chose (port 0 in the file), read back from its startup log. Killed by its PID on
/// dispose if still running.
/// </summary>
public sealed partial class GatewayReplica : IAsyncDisposable
{
    private readonly RunningGatewayProcess _process;

    private GatewayReplica(int index, RunningGatewayProcess process)
    {
        Index = index;
        _process = process;
    }

    /// <summary>Which replica (0, 1, 2...), for messages.</summary>
    public int Index { get; }

    /// <summary>ws://127.0.0.1:PORT/ of the listener named <c>ws</c>, once ready.</summary>
    public Uri Listener { get; private set; } = null!;

    /// <summary>http://127.0.0.1:PORT/ of the admin listener, once ready.</summary>
    public Uri Admin { get; private set; } = null!;

    public string Output => _process.Output;

    [GeneratedRegex(@"Listener ws bound to 127\.0\.0\.1:(\d+) ")]
    private static partial Regex WsBound();

    [GeneratedRegex(@"Listener admin bound to 127\.0\.0\.1:(\d+) ")]
    private static partial Regex AdminBound();

    public static GatewayReplica Start(int index, string configPath) =>
        new(index, GatewayProcess.Start(new Dictionary<string, string>(), "--config", configPath));

    /// <summary>Waits for both listeners' startup lines, then for <c>/readyz</c> to answer 200.</summary>
    public async Task WaitReadyAsync(TimeSpan within)
    {
        var ws = await _process.WaitForLineAsync(WsBound(), within);
        var admin = await _process.WaitForLineAsync(AdminBound(), within);
        Listener = new Uri($"ws://127.0.0.1:{ws.Groups[1].Value}/");
        Admin = new Uri($"http://127.0.0.1:{admin.Groups[1].Value}/");
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(2) };
        await Retry.Eventually(async () =>
            Assert.Equal(HttpStatusCode.OK, (await http.GetAsync(new Uri(Admin, "/readyz"))).StatusCode), within);
    }

    /// <summary>The tunnels open on this replica now (admin <c>GET /connections</c>): each one's client address and destination.</summary>
    public async Task<IReadOnlyList<(string Client, string Destination)>> ConnectionsAsync(HttpClient http)
    {
        using var json = JsonDocument.Parse(await http.GetStringAsync(new Uri(Admin, "/connections")));
        return json.RootElement.GetProperty("connections").EnumerateArray()
            .Select(c => (c.GetProperty("client").GetString() ?? string.Empty, c.GetProperty("destination").GetString() ?? string.Empty))
            .ToList();
    }

    public ValueTask DisposeAsync() => _process.DisposeAsync();
}
