namespace Gateway.Reload;

internal static class ReloadExtensions
{
    /// <summary>
    /// The reload of the configuration file: each edit checked whole (<see cref="EditValidation"/>), then applied, logged
    /// and counted (<see cref="ConfigReloadReporter"/>), which also hears YARP's own verdict on the routes and clusters.
    /// A control-path folder: it uses the data path's capabilities, which never use it.
    /// </summary>
    public static IServiceCollection AddConfigReload(this IServiceCollection services)
    {
        services.AddSingleton<ConfigReloadReporter>();
        services.AddHostedService(provider => provider.GetRequiredService<ConfigReloadReporter>());
        services.AddSingleton<Yarp.ReverseProxy.Configuration.IConfigChangeListener>(provider => provider.GetRequiredService<ConfigReloadReporter>());
        return services;
    }
}
