using Gateway.Relay;

namespace Gateway.Lifecycle;

/// <summary>
/// Closes a set of tunnels evenly over a period (tunnel i of n at i/n of it), so that their clients reconnect over
/// that time instead of in one instant: the shutdown drain, a removed destination, an operator's drain.
/// </summary>
internal static class SpreadClose
{
    private static readonly TimeSpan Step = TimeSpan.FromMilliseconds(20);

    /// <param name="cancellationToken">
    /// Stops the spread at once, between two closes (a drain ended, a removal reverted): no tunnel is closed after it
    /// fires. Throws <see cref="OperationCanceledException"/> then.
    /// </param>
    /// <param name="finished">
    /// Ends the spread early when true: the slots of tunnels that already ended on their own are not waited for.
    /// </param>
    public static async Task RunAsync(IReadOnlyList<RelayTunnel> tunnels, TimeSpan period, Action<RelayTunnel> close, TimeProvider time,
        CancellationToken cancellationToken = default, Func<bool>? finished = null)
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
                cancellationToken.ThrowIfCancellationRequested();
                close(tunnels[closed]);
            }
            if (closed < tunnels.Count)
            {
                if (finished?.Invoke() == true)
                {
                    return;
                }
                await Task.Delay(Step, time, cancellationToken).ConfigureAwait(false);
            }
        }
    }
}
