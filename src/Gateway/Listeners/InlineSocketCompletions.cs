using Gateway.Configuration;

namespace Gateway.Listeners;

/// <summary>
/// Turns on the runtime's inline socket completions (<c>DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS=1</c>) for the
/// gateway's own process, unless the environment already sets the variable or <c>Gateway:InlineCompletions</c> is false.
/// </summary>
/// <remarks>
/// System.Net.Sockets reads the variable once, when the process's sockets stack first starts, and the gateway may start
/// it before its listeners are configured (checking <c>Upstream:SourceAddresses</c> binds a socket to each). Set when
/// the listeners were configured, as it was until 2026-12-01, it then came too late and silently did nothing: socket
/// completions went through the thread pool, and 1,000 clients at one message a second cost 7.2 % of a core instead of
/// 5.4 % (bench/RESULTS.md). So this runs before anything else, from a quick read of the sources the options come from;
/// the options loader reports anything wrong with them afterwards.
/// </remarks>
internal static class InlineSocketCompletions
{
    public const string Variable = "DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS";

    public static void Prepare(string configFile, string[] args, Func<string, string?> getEnvironment)
    {
        if (getEnvironment(Variable) is not null)
        {
            return;
        }
        bool enabled;
        try
        {
            var configuration = new ConfigurationBuilder()
                .AddJsonFile(Path.GetFullPath(configFile), optional: true, reloadOnChange: false)
                .AddEnvironmentVariables()
                .AddCommandLine(args)
                .Build();
            enabled = configuration.GetValue($"{GatewayOptions.SectionName}:{nameof(GatewayOptions.InlineCompletions)}", true);
        }
        catch (Exception ex) when (ex is InvalidDataException or IOException or UnauthorizedAccessException or FormatException or InvalidOperationException)
        {
            // A file that cannot be read or parsed stops the start a moment later, with the loader's one clear line.
            return;
        }
        if (enabled)
        {
            Environment.SetEnvironmentVariable(Variable, "1");
        }
    }
}
