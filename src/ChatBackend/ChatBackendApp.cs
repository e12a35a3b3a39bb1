using System.Text.Json;
using ChatBackend.DemoTokens;
using ChatBackend.Echo;
using ChatBackend.Rooms;
using ChatBackend.Sockets;
using Microsoft.Extensions.Configuration.Memory;
using Microsoft.Extensions.FileProviders;

namespace ChatBackend;

/// <summary>
/// Builds the sample chat backend. Public so tests (and the gateway's integration tests) can host the
/// real app in-process on an ephemeral port instead of a mock.
/// </summary>
public static class ChatBackendApp
{
    /// <summary>Builds, but does not start, the app. Accepts the usual host arguments, e.g. <c>--urls http://127.0.0.1:0 --Instance b1</c>.</summary>
    public static WebApplication Build(string[] args)
    {
        var builder = WebApplication.CreateBuilder(args);

        // Lowest-priority defaults (index 0, so any other source overrides them). Kept in code rather than
        // in appsettings.json because a referenced web project's appsettings.json would be copied into,
        // and clash with, the output of projects that host this app in-process.
        builder.Configuration.Sources.Insert(0, new MemoryConfigurationSource
        {
            InitialData = new Dictionary<string, string?>
            {
                ["Logging:LogLevel:Default"] = "Information",
                ["Logging:LogLevel:Microsoft.AspNetCore"] = "Warning",
            },
        });
        var settings = BackendSettings.FromConfiguration(builder.Configuration);

        builder.Services.AddSingleton(settings);
        builder.Services.AddSingleton<RoomRegistry>();
        builder.Services.AddSingleton<ConnectionTracker>();
        builder.Services.AddHostedService(services => services.GetRequiredService<ConnectionTracker>());
        builder.Services.AddSingleton<ChatEndpoint>();
        builder.Services.AddSingleton<EchoEndpoint>();
        if (DemoTokenIssuer.FromConfiguration(builder.Configuration) is { } demoTokens)
        {
            builder.Services.AddSingleton(demoTokens);
        }

        var app = builder.Build();

        // Physical wwwroot first (edit-and-reload while developing), embedded copy as the fallback so the
        // page is also there when the app runs from another project's output directory.
        var embedded = new EmbeddedFileProvider(typeof(ChatBackendApp).Assembly, "ChatBackend.wwwroot");
        app.Environment.WebRootFileProvider = new CompositeFileProvider(app.Environment.WebRootFileProvider, embedded);

        app.UseWebSockets(new WebSocketOptions { KeepAliveInterval = settings.KeepAliveInterval });
        app.UseDefaultFiles();
        app.UseStaticFiles();

        app.MapGet("/healthz", () => Results.Text("ok", "text/plain"));
        app.MapGet("/whoami", () => Results.Text(settings.Instance, "text/plain"));
        app.MapGet("/headers", WriteHeadersAsync);
        app.MapGet("/demo-token", DemoTokenEndpoint.Handle);

        // Map (any method), not MapGet: WebSockets over HTTP/2 (RFC 8441) arrive as CONNECT requests.
        app.Map("/chat/{room}", context => context.RequestServices.GetRequiredService<ChatEndpoint>().HandleAsync(context));
        app.Map("/echo", context => context.RequestServices.GetRequiredService<EchoEndpoint>().HandleAsync(context));

        return app;
    }

    /// <summary>
    /// Echoes the request headers as one JSON object so tests can see what a proxy forwarded. Names are
    /// lower-cased (HTTP header names are case-insensitive, and HTTP/2 sends them lower-case anyway);
    /// repeated values are joined with ", ".
    /// </summary>
    private static async Task WriteHeadersAsync(HttpContext context)
    {
        context.Response.ContentType = "application/json; charset=utf-8";
        await using var json = new Utf8JsonWriter(context.Response.Body, new JsonWriterOptions { Indented = true });
        json.WriteStartObject();
        foreach (var (name, values) in context.Request.Headers.OrderBy(header => header.Key, StringComparer.OrdinalIgnoreCase))
        {
            json.WriteString(name.ToLowerInvariant(), string.Join(", ", values.OfType<string>()));
        }

        json.WriteEndObject();
        await json.FlushAsync(context.RequestAborted);
    }
}
