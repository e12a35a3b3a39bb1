using Gateway.Configuration;

namespace Gateway.Proxy;

/// <summary>Turns YARP's "Unable to load or apply the proxy configuration" into the one line that matters.</summary>
internal static class ProxyConfigErrors
{
    public static string Describe(Exception ex)
    {
        var errors = new List<Exception>();
        Collect(ex, errors);

        // A cluster that fails validation also makes every route to it look undefined: report causes, not consequences.
        var causes = errors.Where(e => e is not GatewayConfigurationException { IsConsequence: true }).ToList();
        if (causes.Count == 0)
        {
            causes = errors;
        }
        var first = causes.OfType<GatewayConfigurationException>().FirstOrDefault() ?? causes.FirstOrDefault() ?? ex;
        var text = first is GatewayConfigurationException ? first.Message : $"{GatewayApplication.ReverseProxySection}: {first.Message.TrimEnd('.')}";
        return text + More(causes.Count);

        static string More(int count) => count > 1 ? $" (and {count - 1} more problem{(count > 2 ? "s" : "")})" : string.Empty;
    }

    private static void Collect(Exception ex, List<Exception> leaves)
    {
        switch (ex)
        {
            case GatewayConfigurationException:
                leaves.Add(ex);
                break;
            case AggregateException aggregate:
                foreach (var inner in aggregate.InnerExceptions)
                {
                    Collect(inner, leaves);
                }
                break;
            case { InnerException: { } inner }:
                Collect(inner, leaves);
                break;
            default:
                leaves.Add(ex);
                break;
        }
    }
}
