namespace Gateway.Configuration;

/// <summary>
/// <c>--check-config</c>, like <c>nginx -t</c>: builds the gateway as a start would (both sections of the file, YARP's
/// validation of routes and clusters, unknown keys, certificates read and parsed, the admin token's variable) and
/// stops before anything is bound. Exit 0 with one line naming the file, or 2 with the usual one line naming file and key.
/// </summary>
internal static class CheckConfig
{
    public const string Argument = "--check-config";

    public static async Task<int> RunAsync(string[] args)
    {
        try
        {
            // Build opens no socket: listeners and the admin port bind in StartAsync, which this never calls.
            // Warnings (a self-signed certificate in use...) are worth seeing here; the startup's information lines are not.
            string[] quiet = [.. args.Where(arg => arg != Argument), "--Logging:LogLevel:Default=Warning"];
            await using var app = GatewayApplication.Build(quiet);
            var file = app.Services.GetRequiredService<ConfigFile>();
            Console.Out.WriteLine($"gateway: {file.ShownPath}: configuration ok");
            return 0;
        }
        catch (GatewayStartupException ex)
        {
            Console.Error.WriteLine($"gateway: error: {ex.Message}");
            return ex.ExitCode;
        }
    }
}
