namespace Gateway.Configuration;

/// <summary>
/// Finds keys in the <c>ReverseProxy</c> section that YARP does not read: its provider picks the keys it knows and
/// ignores the rest, so <c>Mtach</c> or <c>Intervall</c> would run with defaults. The allowed keys are the public
/// properties of YARP's own configuration records (<see cref="ReverseProxyShape"/>); <c>Metadata</c> and
/// <c>Transforms</c> entries are free-form and the keys of <c>Routes</c>, <c>Clusters</c> and <c>Destinations</c> are ids.
/// </summary>
internal static class ReverseProxyKeys
{
    public static void Check(IConfigurationSection reverseProxy) => CheckObject(reverseProxy, typeof(ReverseProxyShape));

    private static void CheckObject(IConfigurationSection section, Type type)
    {
        if (section.Value is not null && !section.GetChildren().Any())
        {
            throw new GatewayConfigurationException(section.Path, "expected an object, found a single value");
        }
        foreach (var child in section.GetChildren())
        {
            if (ConfigShape.Key(type, child.Key) is not { } property)
            {
                var known = string.Join(", ", ConfigShape.Keys(type).Select(p => p.Name));
                throw new GatewayConfigurationException(child.Path, $"unknown key (expected one of: {known})");
            }
            CheckValue(child, property.PropertyType);
        }
    }

    private static void CheckValue(IConfigurationSection section, Type type)
    {
        switch (ConfigShape.Classify(type, out var element))
        {
            case ConfigShape.Kind.Scalar:
                if (section.GetChildren().Any())
                {
                    throw new GatewayConfigurationException(section.Path, "expected a single value, found an object");
                }
                if (section.Value is { Length: > 0 } value && element == typeof(TimeSpan) && !Durations.TryParse(value, out _))
                {
                    throw new GatewayConfigurationException(section.Path, $"'{value}' is not a duration (30s, 5m, 250ms, 1m30s or hh:mm:ss)");
                }
                break;
            case ConfigShape.Kind.Map:
            case ConfigShape.Kind.List:
                if (section.Value is { Length: > 0 } && !section.GetChildren().Any())
                {
                    throw new GatewayConfigurationException(section.Path, ConfigShape.Classify(type, out _) == ConfigShape.Kind.List
                        ? "expected a list, found a single value" : "expected an object, found a single value");
                }
                foreach (var entry in section.GetChildren())
                {
                    CheckValue(entry, element);
                }
                break;
            default:
                CheckObject(section, element);
                break;
        }
    }
}
