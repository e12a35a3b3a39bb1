using System.Net;
using System.Net.Sockets;
using System.Text;
using Gateway.Listeners.LeanHttp1;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Net.Http.Headers;

namespace Gateway.Tests.Listeners.LeanHttp1;

/// <summary>The lean path names and orders request headers as the Kestrel of this runtime does (YARP forwards them in that order).</summary>
public sealed class KestrelHeaderNamesTests
{
    [Fact]
    public async Task Names_and_order_are_Kestrels()
    {
        // Every name Kestrel knows and every HeaderNames name, backwards and in odd case, among names nobody knows.
        var sent = new List<string> { "X-Unknown-First", "X-FORWARDED-FOR" };
        sent.AddRange(KestrelHeaderNames.KnownOrder.Reverse().Where(name => name != "Host").Select(Oddly));
        sent.Add("x-unknown-middle");
        sent.AddRange(typeof(HeaderNames).GetFields().Where(f => f.FieldType == typeof(string)).Select(f => (string)f.GetValue(null)!)
            .Where(name => !name.StartsWith(':') && name is not ("Content-Length" or "Transfer-Encoding" or "Host"))
            .Select(name => name.ToUpperInvariant()));
        sent.Add("Sec-WebSocket-Key");
        sent.Add("x-unknown-last");
        sent = sent.DistinctBy(name => name, StringComparer.OrdinalIgnoreCase).ToList();

        var kestrel = await KestrelOrderAsync(sent);

        var fields = new List<KestrelHeaderNames.Field> { new(KestrelHeaderNames.Rank(HeaderNames.Host), HeaderNames.Host, "localhost") };
        foreach (var name in sent)
        {
            var spelled = KestrelHeaderNames.Name(Encoding.ASCII.GetBytes(name));
            fields.Add(new(KestrelHeaderNames.Rank(spelled), spelled, "v"));
        }
        var lean = KestrelHeaderNames.ToHeaders(fields.ToArray());
        Assert.Equal(kestrel, lean.Select(pair => pair.Key).ToList());
    }

    private static string Oddly(string name) => new(name.Select((c, i) => i % 2 == 0 ? char.ToUpperInvariant(c) : char.ToLowerInvariant(c)).ToArray());

    /// <summary>The header names a bare Kestrel app sees, in its enumeration order, for a request carrying <paramref name="names"/>.</summary>
    private static async Task<List<string>> KestrelOrderAsync(List<string> names)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseKestrel(kestrel =>
        {
            kestrel.Listen(IPAddress.Loopback, 0);
            kestrel.Limits.MaxRequestHeaderCount = 1000;
        });
        await using var app = builder.Build();
        List<string>? seen = null;
        app.Run(context =>
        {
            seen = context.Request.Headers.Select(pair => pair.Key).ToList();
            return Task.CompletedTask;
        });
        await app.StartAsync();
        var address = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First());

        var request = new StringBuilder("GET / HTTP/1.1\r\nHost: localhost\r\n");
        foreach (var name in names)
        {
            request.Append(name).Append(": v\r\n");
        }
        request.Append("\r\n");
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, address.Port);
        var stream = tcp.GetStream();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        await stream.WriteAsync(Encoding.ASCII.GetBytes(request.ToString()), timeout.Token);
        Assert.StartsWith("HTTP/1.1 200", await Infrastructure.RawFrames.ReadHeadAsync(stream, timeout.Token));
        await app.StopAsync();
        // The Host line was sent first: its place among the known names is the table's to check too.
        return seen!;
    }
}
