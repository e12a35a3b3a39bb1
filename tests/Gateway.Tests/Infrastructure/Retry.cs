namespace Gateway.Tests.Infrastructure;

/// <summary>For conditions that become true in a bounded time (health checks, reloads, counters after a close).</summary>
public static class Retry
{
    /// <summary>Runs <paramref name="attempt"/> until it stops throwing, or rethrows its last failure after <paramref name="within"/>.</summary>
    public static async Task<T> Eventually<T>(Func<Task<T>> attempt, TimeSpan within)
    {
        var deadline = DateTime.UtcNow + within;
        while (true)
        {
            try
            {
                return await attempt();
            }
            catch (Exception) when (DateTime.UtcNow < deadline)
            {
                await Task.Delay(100);
            }
        }
    }

    public static Task Eventually(Func<Task> attempt, TimeSpan within) =>
        Eventually(async () =>
        {
            await attempt();
            return true;
        }, within);

    /// <summary>Runs <paramref name="assertion"/> until it passes, or rethrows its last failure after <paramref name="within"/>.</summary>
    public static Task Eventually(Action assertion, TimeSpan within) =>
        Eventually(() =>
        {
            assertion();
            return Task.FromResult(true);
        }, within);
}
