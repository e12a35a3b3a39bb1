namespace Gateway.Admin;

/// <summary>
/// <c>Gateway --health-check [URL]</c>: asks a running gateway's admin listener whether it is alive, exit 0 or 1.
/// Container images of ASP.NET Core carry no curl, so the HEALTHCHECK uses the gateway's own binary.
/// </summary>
internal static class HealthProbe
{
    public const string Argument = "--health-check";
    public const string DefaultUrl = "http://127.0.0.1:9901/healthz";

    public static async Task<int> RunAsync(string[] args)
    {
        var index = Array.IndexOf(args, Argument);
        var url = index + 1 < args.Length ? args[index + 1] : DefaultUrl;
        try
        {
            using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(5) };
            using var response = await client.GetAsync(url);
            Console.WriteLine($"{url}: {(int)response.StatusCode}");
            return response.IsSuccessStatusCode ? 0 : 1;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or UriFormatException or InvalidOperationException)
        {
            Console.Error.WriteLine($"{url}: {ex.Message}");
            return 1;
        }
    }
}
