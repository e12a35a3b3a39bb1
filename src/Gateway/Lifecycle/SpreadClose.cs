using Gateway.Relay;

namespace Gateway.Lifecycle;

/// <summary>
/// Closes a set of tunnels evenly over a period (tunnel i of n at i/n of it), so that their clients reconnect over
/// that time instead of in one instant: the shutdown drain, a removed destination, an operator's drain.
/// </summary>
internal static class SpreadClose
{
    private static readonly TimeSpan Step = TimeSpan.FromMilliseconds(20);

    public static async Task RunAsync(IReadOnlyList<RelayTunnel> tunnels, TimeSpan period, Action<RelayTunnel> close, TimeProvider time,
        CancellationToken cancellationToken = default)
    {
        var start = time.GetTimestamp();
        var closed = 0;
        while (closed < tunnels.Count)
        {
            var elapsed = time.GetElapsedTime(start);
            var due = period <= TimeSpan.Zero || elapsed >= period
                ? tunnels.Count
                : (int)Math.Min(tunnels.Count, 1 + (long)(tunnels.Count * (elapsed.Ticks / (double)period.Ticks)));
            for (; closed < due; closed++)
            {
                close(tunnels[closed]);
            }
            if (closed < tunnels.Count)
            {
                await Task.Delay(Step, time, cancellationToken).ConfigureAwait(false);
            }
        }
    }
}
