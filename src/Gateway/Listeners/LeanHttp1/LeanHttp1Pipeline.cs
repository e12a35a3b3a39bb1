namespace Gateway.Listeners.LeanHttp1;

/// <summary>The application's request pipeline, as Kestrel's requests run it, captured when the host builds it.</summary>
internal sealed class LeanHttp1Pipeline
{
    public RequestDelegate? Application { get; set; }
}

/// <summary>
/// The outermost startup filter (registered first): the delegate after it is the whole application pipeline, the other
/// startup filters' middleware and WebApplication's implicit routing, authorization and endpoints included. Kestrel's
/// requests pass it at no cost.
/// </summary>
internal sealed class LeanHttp1StartupFilter(LeanHttp1Pipeline pipeline) : IStartupFilter
{
    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        app.Use(inner =>
        {
            pipeline.Application = inner;
            return inner;
        });
        // Kestrel's requests (the lean path's have their handover already): the one frame that waits for a tunnel.
        app.UseMiddleware<TunnelHoldingMiddleware>();
        next(app);
    };
}
