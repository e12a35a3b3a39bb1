namespace Gateway.Configuration;

internal static class ConfigurationExtensions
{
    /// <summary>The validated options, the file they came from, the reporter that logs and counts its reloads, and SIGHUP.</summary>
    public static IServiceCollection AddGatewayConfiguration(this IServiceCollection services, GatewayOptions options, ConfigFile file,
        ReloadableJsonConfigurationSource source)
    {
        services.AddSingleton(options);
        services.AddSingleton(file);
        services.AddSingleton(source);
        services.AddSingleton<ConfigReloadReporter>();
        services.AddHostedService(provider => provider.GetRequiredService<ConfigReloadReporter>());
        services.AddSingleton<Yarp.ReverseProxy.Configuration.IConfigChangeListener>(provider => provider.GetRequiredService<ConfigReloadReporter>());
        services.AddSingleton<ReloadSignal>();
        services.AddHostedService(provider => provider.GetRequiredService<ReloadSignal>());
        return services;
    }
}
