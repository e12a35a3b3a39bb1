using System.Collections.Concurrent;
using System.Net;
using System.Text;
using Gateway.Tests.Infrastructure;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Gateway.Tests.Telemetry;

/// <summary>One export a collector received: where it was posted, its headers and its protobuf body.</summary>
public sealed record OtlpRequest(string Path, string? ContentType, IReadOnlyDictionary<string, string> Headers, byte[] Body)
{
    /// <summary>
    /// Whether the body holds <paramref name="text"/> as UTF-8: metric, attribute and span names and string values are
    /// stored as such in protobuf, so no decoding is needed to find them.
    /// </summary>
    public bool Contains(string text) => Contains(Encoding.UTF8.GetBytes(text));

    public bool Contains(ReadOnlySpan<byte> bytes) => Body.AsSpan().IndexOf(bytes) >= 0;

    /// <summary>How often <paramref name="text"/> occurs in the body.</summary>
    public int Count(string text)
    {
        var needle = Encoding.UTF8.GetBytes(text);
        var count = 0;
        var rest = Body.AsSpan();
        for (var at = rest.IndexOf(needle); at >= 0; at = rest.IndexOf(needle))
        {
            count++;
            rest = rest[(at + needle.Length)..];
        }
        return count;
    }
}

/// <summary>
/// A real OTLP collector endpoint on a loopback port: Kestrel accepting OTLP/HTTP (<c>POST /v1/metrics</c>,
/// <c>/v1/traces</c>, protobuf, over HTTP/1.1) or OTLP/gRPC (<c>.../Export</c> over cleartext HTTP/2), answering each
/// export as a collector does (an empty success message) and keeping what it received.
/// </summary>
public sealed class OtlpReceiver : IAsyncDisposable
{
    public const string MetricsGrpcPath = "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export";
    public const string TracesGrpcPath = "/opentelemetry.proto.collector.trace.v1.TraceService/Export";

    private readonly WebApplication _app;

    private OtlpReceiver(WebApplication app) => _app = app;

    /// <summary>The base URL to configure as <c>Gateway:Telemetry:Otlp:Endpoint</c>.</summary>
    public Uri Endpoint { get; private set; } = null!;

    public ConcurrentQueue<OtlpRequest> Received { get; } = new();

    public IEnumerable<OtlpRequest> At(string path) => Received.Where(r => r.Path == path);

    /// <param name="grpc">Serve OTLP/gRPC (HTTP/2 only, prior knowledge) instead of OTLP/HTTP.</param>
    public static async Task<OtlpReceiver> StartAsync(bool grpc = false)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel =>
            kestrel.Listen(IPAddress.Loopback, 0, listen => listen.Protocols = grpc ? HttpProtocols.Http2 : HttpProtocols.Http1));
        var app = builder.Build();
        var receiver = new OtlpReceiver(app);
        app.Run(receiver.HandleAsync);
        await app.StartAsync();
        var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        receiver.Endpoint = new Uri(bound.TrimEnd('/') + "/");
        return receiver;
    }

    /// <summary>Waits (bounded) for an export to <paramref name="path"/> that satisfies <paramref name="match"/>.</summary>
    public Task<OtlpRequest> WaitForAsync(string path, Func<OtlpRequest, bool> match, TimeSpan within) =>
        Retry.Eventually(() =>
        {
            var found = At(path).FirstOrDefault(match);
            return found is null
                ? Task.FromException<OtlpRequest>(new TimeoutException($"no matching export to {path} among {Received.Count} received ({string.Join(", ", Received.Select(r => r.Path))})"))
                : Task.FromResult(found);
        }, within);

    private async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        if (request.Method != HttpMethods.Post)
        {
            context.Response.StatusCode = StatusCodes.Status405MethodNotAllowed;
            return;
        }
        using var body = new MemoryStream();
        await request.Body.CopyToAsync(body);
        var headers = request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase);
        var path = request.Path.Value ?? "/";
        var grpc = request.ContentType?.StartsWith("application/grpc", StringComparison.Ordinal) == true;
        var bytes = body.ToArray();
        Received.Enqueue(new OtlpRequest(path, request.ContentType, headers, grpc && bytes.Length >= 5 ? bytes[5..] : bytes));

        if (grpc)
        {
            // One length-prefixed message (uncompressed, empty: a full success), then grpc-status in the trailers.
            context.Response.ContentType = "application/grpc";
            await context.Response.Body.WriteAsync(new byte[5]);
            context.Response.AppendTrailer("grpc-status", "0");
            return;
        }
        if (path is not ("/v1/metrics" or "/v1/traces" or "/v1/logs"))
        {
            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return;
        }
        // An empty Export*ServiceResponse: everything accepted.
        context.Response.ContentType = "application/x-protobuf";
        context.Response.ContentLength = 0;
    }

    public async ValueTask DisposeAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await _app.StopAsync(timeout.Token);
        await _app.DisposeAsync();
    }
}
