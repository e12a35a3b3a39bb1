using Gateway.Handshake;
using System.Collections.Concurrent;
using System.Diagnostics;
using Gateway.Telemetry;

namespace Gateway.Tests.Telemetry;

/// <summary>
/// Records, in process, every span of the gateway's <c>Gateway</c> source on one route (test routes have unique ids, so
/// gateways of other tests do not count). It samples nothing itself: an <see cref="ActivityListener"/>'s own sampling
/// result would be combined with the gateway's, and the gateway's sampler is under test too.
/// </summary>
public sealed class SpanRecorder : IDisposable
{
    private readonly ActivityListener _listener;
    private readonly string _route;

    public SpanRecorder(string route)
    {
        _route = route;
        _listener = new ActivityListener
        {
            ShouldListenTo = source => source.Name == HandshakeTracing.SourceName,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.None,
            SampleUsingParentId = (ref ActivityCreationOptions<string> _) => ActivitySamplingResult.None,
            // The route tag is set after the start callback; the span itself is enough to count it once known.
            ActivityStarted = activity => StartedAll.Enqueue(activity),
            ActivityStopped = activity => StoppedAll.Enqueue(activity),
        };
        ActivitySource.AddActivityListener(_listener);
    }

    private ConcurrentQueue<Activity> StartedAll { get; } = new();

    /// <summary>Spans of the route that were started (their route tag is set right after the start).</summary>
    public Activity[] Started => StartedAll.Where(IsOurs).ToArray();

    /// <summary>Every span of the source started while recording, of any route (to show that a gateway made none).</summary>
    public int StartedAnyRoute => StartedAll.Count;

    /// <summary>Spans of the route that have ended.</summary>
    public Activity[] Stopped => StoppedAll.Where(IsOurs).ToArray();

    /// <summary>Every span of the source that ended while recording, tagged or not (a span sampled out has no attributes).</summary>
    public ConcurrentQueue<Activity> StoppedAll { get; } = new();

    private bool IsOurs(Activity activity) => activity.GetTagItem(SpanAttributes.Route) as string == _route;

    public void Dispose() => _listener.Dispose();
}
