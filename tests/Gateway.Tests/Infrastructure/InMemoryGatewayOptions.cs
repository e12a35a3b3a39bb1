using Gateway.Configuration;
using Microsoft.Extensions.Configuration;

namespace Gateway.Tests.Infrastructure;

/// <summary>Loads the Gateway section from key/value pairs, as if from a file in /etc/gateway.</summary>
internal static class InMemoryGatewayOptions
{
    public static GatewayOptions Load(params (string Key, string Value)[] values)
    {
        var configuration = new ConfigurationBuilder()
            .AddInMemoryCollection(values.Select(v => new KeyValuePair<string, string?>(v.Key, v.Value)))
            .Build();
        return GatewayConfiguration.Load(configuration, "/etc/gateway");
    }
}
