using Gateway.Admin;
using Gateway.Configuration;

namespace Gateway;

public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        if (args.Contains(HealthProbe.Argument))
        {
            return await HealthProbe.RunAsync(args);
        }
        if (args.Contains(CheckConfig.Argument))
        {
            return await CheckConfig.RunAsync(args);
        }

        try
        {
            await using var app = GatewayApplication.Build(args);
            await GatewayApplication.StartAsync(app);
            await app.WaitForShutdownAsync();
            return 0;
        }
        catch (GatewayStartupException ex)
        {
            // One line the operator can act on; the exit code tells scripts which kind of failure it was.
            Console.Error.WriteLine($"gateway: error: {ex.Message}");
            return ex.ExitCode;
        }
    }
}
