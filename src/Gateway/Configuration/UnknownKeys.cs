using System.Reflection;

namespace Gateway.Configuration;

/// <summary>
/// Finds keys in a configuration section that no options property reads, and names the full key.
/// The binder's own ErrorOnUnknownConfiguration names only the property and the type, not where in the file it is.
/// </summary>
internal static class UnknownKeys
{
    public static void Check(IConfigurationSection section, Type optionsType)
    {
        foreach (var child in section.GetChildren())
        {
            var property = optionsType.GetProperty(child.Key, BindingFlags.Public | BindingFlags.Instance | BindingFlags.IgnoreCase);
            if (property is null || !property.CanWrite && !IsCollection(property.PropertyType))
            {
                var known = string.Join(", ", optionsType.GetProperties(BindingFlags.Public | BindingFlags.Instance).Select(p => p.Name));
                throw new GatewayConfigurationException(child.Path, $"unknown key (expected one of: {known})");
            }
            CheckValue(child, property.PropertyType);
        }
    }

    private static void CheckValue(IConfigurationSection section, Type type)
    {
        type = Nullable.GetUnderlyingType(type) ?? type;
        if (IsScalar(type))
        {
            if (section.GetChildren().Any())
            {
                throw new GatewayConfigurationException(section.Path, $"expected a single value ({FriendlyName(type)}), found an object");
            }
            if (section.Value is { Length: > 0 } value && !Converts(value, type))
            {
                // The binder drops a dictionary entry whose value does not convert, silently: say it here.
                var expected = type.IsEnum ? $"one of {string.Join(", ", Enum.GetNames(type))}" : FriendlyName(type);
                throw new GatewayConfigurationException(section.Path, $"'{value}' is not {expected}");
            }
            return;
        }
        if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(Dictionary<,>))
        {
            var valueType = type.GetGenericArguments()[1];
            foreach (var entry in section.GetChildren())
            {
                CheckValue(entry, valueType);
            }
            return;
        }
        if (type.IsGenericType && type.GetGenericTypeDefinition() == typeof(List<>))
        {
            var itemType = type.GetGenericArguments()[0];
            foreach (var item in section.GetChildren())
            {
                CheckValue(item, itemType);
            }
            return;
        }
        if (section.Value is not null && !section.GetChildren().Any())
        {
            throw new GatewayConfigurationException(section.Path, "expected an object, found a single value");
        }
        Check(section, type);
    }

    private static bool IsCollection(Type type) =>
        type.IsGenericType && (type.GetGenericTypeDefinition() == typeof(Dictionary<,>) || type.GetGenericTypeDefinition() == typeof(List<>));

    private static bool IsScalar(Type type) =>
        type.IsPrimitive || type.IsEnum || type == typeof(string) || type == typeof(TimeSpan) || type == typeof(decimal) || type == typeof(Uri);

    private static bool Converts(string value, Type type)
    {
        var invariant = System.Globalization.CultureInfo.InvariantCulture;
        return type switch
        {
            _ when type == typeof(string) => true,
            _ when type == typeof(int) => int.TryParse(value, invariant, out _),
            _ when type == typeof(bool) => bool.TryParse(value, out _),
            _ when type == typeof(double) => double.TryParse(value, System.Globalization.NumberStyles.Float, invariant, out _),
            _ when type == typeof(TimeSpan) => Durations.TryParse(value, out _),
            _ when type.IsEnum => Enum.TryParse(type, value, ignoreCase: true, out _),
            _ => true,
        };
    }

    private static string FriendlyName(Type type) => type switch
    {
        _ when type == typeof(string) => "text",
        _ when type == typeof(int) => "a whole number",
        _ when type == typeof(bool) => "true or false",
        _ when type == typeof(double) => "a number",
        _ when type == typeof(TimeSpan) => "a duration (30s, 5m, 250ms, 1m30s or hh:mm:ss)",
        _ => type.Name,
    };
}
