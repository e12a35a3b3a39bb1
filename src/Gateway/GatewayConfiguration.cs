using Gateway.Configuration;
using Gateway.Handshake;
using Gateway.Listeners;
using Gateway.Policies;
using Gateway.Proxy;

namespace Gateway;

/// <summary>
/// The <c>Gateway</c> section as the gateway runs it: bound and checked as options by <see cref="GatewayOptionsLoader"/>
/// (Configuration/, which depends on no capability), then judged by the capabilities that read each part. Startup, the
/// reload and <c>--check-config</c> all load it here, so they refuse the same things.
/// </summary>
internal static class GatewayConfiguration
{
    public static GatewayOptions Load(IConfiguration configuration, string configDirectory)
    {
        var options = GatewayOptionsLoader.Load(configuration, configDirectory);
        ReusePortListenSockets.Validate(options);
        SourceAddresses.Validate(options.Upstream);
        foreach (var (name, policy) in options.WebSocketPolicies)
        {
            WebSocketPolicies.Validate(name, policy);
            Identity.IdentityValidation.Validate($"{GatewayOptions.SectionName}:WebSocketPolicies:{name}:Identity", policy.Identity);
        }
        KestrelLimits.Validate(configuration);
        return options;
    }

}
