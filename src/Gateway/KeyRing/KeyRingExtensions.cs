namespace Gateway.KeyRing;

internal static class KeyRingExtensions
{
    /// <summary>
    /// The first key of the shared key ring in <paramref name="keyDirectory"/> is created by one replica, under a lock,
    /// before any replica reads the ring (see <see cref="KeyRingSeed"/>). Goes with Data Protection's
    /// <c>PersistKeysToFileSystem</c> on the same directory.
    /// </summary>
    public static IServiceCollection AddKeyRingSeed(this IServiceCollection services, string keyDirectory)
    {
        services.AddSingleton(new SharedKeyDirectory(keyDirectory));
        services.AddHostedService<KeyRingSeed>();
        return services;
    }
}
