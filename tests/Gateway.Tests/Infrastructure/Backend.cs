using ChatBackend;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Tests.Infrastructure;

/// <summary>A real sample chat backend on a free loopback port.</summary>
public sealed class Backend : IAsyncDisposable
{
    private readonly WebApplication _app;
    private bool _stopped;

    private Backend(WebApplication app, string instance, Uri address)
    {
        _app = app;
        Instance = instance;
        Address = address;
    }

    public string Instance { get; }

    /// <summary>http://127.0.0.1:PORT/</summary>
    public Uri Address { get; }

    public static async Task<Backend> StartAsync(string instance, int port = 0, params string[] extraArgs)
    {
        var app = ChatBackendApp.Build(["--urls", $"http://127.0.0.1:{port}", "--Instance", instance, "--Logging:LogLevel:Default", "Warning", .. extraArgs]);
        await app.StartAsync();
        var bound = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new Backend(app, instance, new Uri(bound.EndsWith('/') ? bound : bound + "/"));
    }

    public async Task StopAsync()
    {
        if (_stopped)
        {
            return;
        }
        _stopped = true;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(5));
        await _app.StopAsync(timeout.Token);
        await _app.DisposeAsync();
    }

    public async ValueTask DisposeAsync() => await StopAsync();
}
