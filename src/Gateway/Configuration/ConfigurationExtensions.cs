namespace Gateway.Configuration;

internal static class ConfigurationExtensions
{
    /// <summary>The validated options, the file they came from, and SIGHUP (the reload's reporter is <c>Reload/</c>'s).</summary>
    public static IServiceCollection AddGatewayConfiguration(this IServiceCollection services, GatewayOptions options, ConfigFile file,
        ReloadableJsonConfigurationSource source)
    {
        services.AddSingleton(options);
        services.AddSingleton(file);
        services.AddSingleton(source);
        services.AddSingleton<ReloadSignal>();
        services.AddHostedService(provider => provider.GetRequiredService<ReloadSignal>());
        return services;
    }
}
