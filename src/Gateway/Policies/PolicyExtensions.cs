namespace Gateway.Policies;

internal static class PolicyExtensions
{
    /// <summary>The named WebSocket policies, which the handshake gate looks up once per handshake.</summary>
    public static IServiceCollection AddWebSocketPolicies(this IServiceCollection services) => services.AddSingleton<WebSocketPolicies>();
}
