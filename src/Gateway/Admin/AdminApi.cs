using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Gateway.Configuration;
using Gateway.Lifecycle;
using Gateway.Relay;
using Yarp.ReverseProxy;

namespace Gateway.Admin;

/// <summary>
/// The operator's API on the admin listener: the open tunnels (<c>GET /connections</c>), closing one
/// (<c>POST /connections/{id}/close?code=&amp;reason=</c>), and draining a destination
/// (<c>POST|GET|DELETE /clusters/{cluster}/destinations/{destination}/drain[?period=]</c>). Answers are JSON.
/// </summary>
internal static class AdminApi
{
    private const int DefaultLimit = 1000;

    public static bool Handles(PathString path) =>
        path.StartsWithSegments("/connections") || path.StartsWithSegments("/clusters");

    public static async Task HandleAsync(HttpContext context)
    {
        if (AdminRequestGuard.Refusal(context) is { } refusal)
        {
            if (refusal.Status == StatusCodes.Status401Unauthorized)
            {
                context.Response.Headers.WWWAuthenticate = "Bearer";
            }
            await ErrorAsync(context, refusal.Status, refusal.Message);
            return;
        }
        var segments = context.Request.Path.Value!.Trim('/').Split('/');
        var method = context.Request.Method;
        switch (segments)
        {
            case ["connections"] when HttpMethods.IsGet(method):
                await ListAsync(context);
                return;
            case ["connections", var id, "close"] when HttpMethods.IsPost(method):
                await CloseAsync(context, id);
                return;
            case ["clusters", var cluster, "destinations", var destination, "drain"]:
                await DrainAsync(context, Uri.UnescapeDataString(cluster), Uri.UnescapeDataString(destination), method);
                return;
            default:
                await ErrorAsync(context, StatusCodes.Status404NotFound,
                    "the admin API serves GET /connections, POST /connections/{id}/close, and POST, GET or DELETE /clusters/{cluster}/destinations/{destination}/drain");
                return;
        }
    }

    private static async Task ListAsync(HttpContext context)
    {
        var query = context.Request.Query;
        string? route = query["route"], cluster = query["cluster"], destination = query["destination"];
        var limit = DefaultLimit;
        if (query["limit"] is { Count: > 0 } limitText && (!int.TryParse(limitText, NumberStyles.None, CultureInfo.InvariantCulture, out limit) || limit < 1))
        {
            await ErrorAsync(context, StatusCodes.Status400BadRequest, "limit must be a positive number");
            return;
        }
        var tunnels = context.RequestServices.GetRequiredService<KeepAliveSweeper>().Snapshot()
            .Where(t => Matches(route, t.RouteId) && Matches(cluster, t.ClusterId) && Matches(destination, t.DestinationId))
            .ToList();
        await WriteJsonAsync(context, StatusCodes.Status200OK, json =>
        {
            json.WriteStartObject();
            json.WriteNumber("total", tunnels.Count);
            json.WriteStartArray("connections");
            foreach (var tunnel in tunnels.OrderBy(t => t.Id).Take(limit))
            {
                var d = tunnel.Describe();
                json.WriteStartObject();
                json.WriteNumber("id", d.Id);
                json.WriteString("route", d.Route);
                json.WriteString("cluster", d.Cluster);
                json.WriteString("destination", d.Destination);
                json.WriteString("client", d.Client);
                json.WriteString("protocol", d.Protocol);
                json.WriteString("scheme", d.Scheme);
                json.WriteString("subprotocol", d.Subprotocol);
                json.WriteString("user", d.User);
                json.WriteNumber("ageSeconds", Math.Round(d.Age.TotalSeconds, 3));
                json.WriteNumber("idleSeconds", Math.Round(d.Idle.TotalSeconds, 3));
                json.WriteNumber("messagesFromClient", d.MessagesFromClient);
                json.WriteNumber("bytesFromClient", d.BytesFromClient);
                json.WriteNumber("messagesFromBackend", d.MessagesFromBackend);
                json.WriteNumber("bytesFromBackend", d.BytesFromBackend);
                json.WriteEndObject();
            }
            json.WriteEndArray();
            json.WriteEndObject();
        });
    }

    private static async Task CloseAsync(HttpContext context, string idText)
    {
        var query = context.Request.Query;
        var code = 1000;
        if (query["code"] is { Count: > 0 } codeText && !int.TryParse(codeText, NumberStyles.None, CultureInfo.InvariantCulture, out code)
            || !RelayTunnel.IsSendableCloseCode(code))
        {
            await ErrorAsync(context, StatusCodes.Status400BadRequest, "code must be one an endpoint may send: 1000, 1001, 1008, 1011, 1012, 1013 or 3000-4999");
            return;
        }
        var reason = query["reason"].ToString();
        if (Encoding.UTF8.GetByteCount(reason) > 123)
        {
            await ErrorAsync(context, StatusCodes.Status400BadRequest, "reason must fit a Close frame: at most 123 bytes of UTF-8 (RFC 6455 §5.5)");
            return;
        }
        var tunnel = long.TryParse(idText, NumberStyles.None, CultureInfo.InvariantCulture, out var id)
            ? context.RequestServices.GetRequiredService<KeepAliveSweeper>().Snapshot().FirstOrDefault(t => t.Id == id)
            : null;
        if (tunnel is null)
        {
            await ErrorAsync(context, StatusCodes.Status404NotFound, $"no open connection {idText}");
            return;
        }
        tunnel.CloseByOperator((ushort)code, reason.Length == 0 ? "closed by operator" : reason);
        await WriteJsonAsync(context, StatusCodes.Status202Accepted, json =>
        {
            json.WriteStartObject();
            json.WriteNumber("id", id);
            json.WriteNumber("code", code);
            json.WriteEndObject();
        });
    }

    private static async Task DrainAsync(HttpContext context, string cluster, string destination, string method)
    {
        var drains = context.RequestServices.GetRequiredService<DestinationDrains>();
        if (HttpMethods.IsPost(method))
        {
            // Only destinations the configuration has: a drain of a made-up name would be kept for nothing.
            if (!context.RequestServices.GetRequiredService<IProxyStateLookup>().TryGetCluster(cluster, out var clusterState)
                || !clusterState.Destinations.ContainsKey(destination))
            {
                await ErrorAsync(context, StatusCodes.Status404NotFound, $"no destination {cluster}/{destination} in the configuration");
                return;
            }
            var period = DrainPeriod.Clamp(context.RequestServices.GetRequiredService<GatewayOptions>().Drain.Period);
            if (context.Request.Query["period"] is { Count: > 0 } periodText)
            {
                if (!TimeSpan.TryParse(periodText, CultureInfo.InvariantCulture, out period) || period < DrainPeriod.Min || period > DrainPeriod.Max)
                {
                    await ErrorAsync(context, StatusCodes.Status400BadRequest,
                        $"period must be a time span from {DrainPeriod.Min:c} to {DrainPeriod.Max:c}, such as 00:00:30: a drain spreads its closes so that clients do not all reconnect at once");
                    return;
                }
            }
            var started = drains.Start(clusterState, destination, period);
            await WriteDrainAsync(context, drains, started, StatusCodes.Status202Accepted);
        }
        else if (HttpMethods.IsGet(method))
        {
            if (drains.Get(cluster, destination) is { } drain)
            {
                await WriteDrainAsync(context, drains, drain, StatusCodes.Status200OK);
            }
            else
            {
                await ErrorAsync(context, StatusCodes.Status404NotFound, $"{cluster}/{destination} is not being drained");
            }
        }
        else if (HttpMethods.IsDelete(method))
        {
            await (drains.Stop(cluster, destination)
                ? WriteJsonAsync(context, StatusCodes.Status200OK, json => { json.WriteStartObject(); json.WriteBoolean("draining", false); json.WriteEndObject(); })
                : ErrorAsync(context, StatusCodes.Status404NotFound, $"{cluster}/{destination} is not being drained"));
        }
        else
        {
            context.Response.Headers.Allow = "GET, POST, DELETE";
            await ErrorAsync(context, StatusCodes.Status405MethodNotAllowed, "use POST to start a drain, GET to follow it, DELETE to end it");
        }
    }

    private static Task WriteDrainAsync(HttpContext context, DestinationDrains drains, DestinationDrain drain, int status) =>
        WriteJsonAsync(context, status, json =>
        {
            json.WriteStartObject();
            json.WriteString("cluster", drain.Cluster);
            json.WriteString("destination", drain.Destination);
            json.WriteBoolean("draining", true);
            json.WriteString("startedAt", drain.StartedAt);
            json.WriteNumber("periodSeconds", drain.Period.TotalSeconds);
            json.WriteNumber("tunnelsAtStart", drain.TunnelsAtStart);
            // The destination's count that load balancing reads, not a second tally of the admin API's own.
            json.WriteNumber("tunnelsOpen", drains.TunnelCount(context.RequestServices.GetRequiredService<IProxyStateLookup>(), drain.Cluster, drain.Destination));
            json.WriteEndObject();
        });

    private static bool Matches(string? filter, string value) =>
        string.IsNullOrEmpty(filter) || string.Equals(filter, value, StringComparison.OrdinalIgnoreCase);

    private static Task ErrorAsync(HttpContext context, int status, string message) =>
        WriteJsonAsync(context, status, json =>
        {
            json.WriteStartObject();
            json.WriteString("error", message);
            json.WriteEndObject();
        });

    private static async Task WriteJsonAsync(HttpContext context, int status, Action<Utf8JsonWriter> write)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json; charset=utf-8";
        await using (var json = new Utf8JsonWriter(context.Response.Body, new JsonWriterOptions { Indented = true }))
        {
            write(json);
        }
    }
}

/// <summary>
/// The admin API's bearer token. None: reads are open, as the rest of the loopback admin listener, and changes only
/// when <c>Admin:AllowUnauthenticatedChanges</c> says so.
/// </summary>
internal sealed class AdminToken(string? token)
{
    private readonly byte[]? _expected = token is null ? null : Encoding.UTF8.GetBytes("Bearer " + token);

    public bool IsConfigured => _expected is not null;

    public bool Allows(string authorization) =>
        _expected is null || CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(authorization), _expected);
}

/// <summary>The bounds of a drain's period: zero closes every tunnel at once, and days keep a destination out for nothing.</summary>
internal static class DrainPeriod
{
    public static readonly TimeSpan Min = TimeSpan.FromSeconds(1);
    public static readonly TimeSpan Max = TimeSpan.FromHours(1);

    public static TimeSpan Clamp(TimeSpan period) => period < Min ? Min : period > Max ? Max : period;
}
