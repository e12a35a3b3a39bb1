using Microsoft.Extensions.DependencyInjection.Extensions;

namespace Gateway.Identity;

internal static class IdentityExtensions
{
    /// <summary>The builder of each policy's token checks, which the handshake gate uses when it compiles a policy.</summary>
    public static IServiceCollection AddEdgeIdentity(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);
        services.TryAddSingleton<TokenAuthenticators>();
        return services;
    }
}
