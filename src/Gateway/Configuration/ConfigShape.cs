using System.Reflection;
using System.Security.Authentication;
using Yarp.ReverseProxy.Configuration;

namespace Gateway.Configuration;

/// <summary>
/// What a configuration key holds, read from the .NET type it binds to: a single value, an object with named
/// properties, a map whose keys are names (ids, metadata keys), or a list. Used to find unknown keys in YARP's section
/// (<see cref="ReverseProxyKeys"/>) and duration keys anywhere (<see cref="Durations"/>).
/// </summary>
internal static class ConfigShape
{
    public enum Kind { Scalar, Object, Map, List }

    /// <summary>Properties that are not keys: YARP takes a route's and a cluster's id from the section's name.</summary>
    private static readonly HashSet<(Type, string)> NotKeys = [(typeof(RouteConfig), nameof(RouteConfig.RouteId)), (typeof(ClusterConfig), nameof(ClusterConfig.ClusterId))];

    public static Kind Classify(Type type, out Type element)
    {
        type = Nullable.GetUnderlyingType(type) ?? type;
        element = type;
        if (type == typeof(SslProtocols))
        {
            // YARP reads HttpClient:SslProtocols as a list of names that it ORs together.
            return Kind.List;
        }
        if (IsScalar(type))
        {
            return Kind.Scalar;
        }
        if (type.IsArray)
        {
            element = type.GetElementType()!;
            return Kind.List;
        }
        if (type.IsGenericType)
        {
            var definition = type.GetGenericTypeDefinition();
            var arguments = type.GetGenericArguments();
            if (definition == typeof(Dictionary<,>) || definition == typeof(IDictionary<,>) || definition == typeof(IReadOnlyDictionary<,>))
            {
                element = arguments[1];
                return Kind.Map;
            }
            if (definition == typeof(List<>) || definition == typeof(IList<>) || definition == typeof(IReadOnlyList<>)
                || definition == typeof(IReadOnlyCollection<>) || definition == typeof(ICollection<>) || definition == typeof(IEnumerable<>))
            {
                element = arguments[0];
                return Kind.List;
            }
        }
        return Kind.Object;
    }

    public static bool IsScalar(Type type) =>
        type.IsPrimitive || type.IsEnum || type == typeof(string) || type == typeof(TimeSpan) || type == typeof(decimal) || type == typeof(Uri)
        || type == typeof(Version) || type == typeof(DateTimeOffset) || type == typeof(DateTime);

    /// <summary>The properties of an object that a key may name.</summary>
    public static IEnumerable<PropertyInfo> Keys(Type type) => type.GetProperties(BindingFlags.Public | BindingFlags.Instance)
        .Where(p => p.GetIndexParameters().Length == 0 && (p.CanWrite || Classify(p.PropertyType, out _) is Kind.Map or Kind.List)
            && !NotKeys.Contains((p.DeclaringType!, p.Name)));

    public static PropertyInfo? Key(Type type, string key) =>
        Keys(type).FirstOrDefault(p => string.Equals(p.Name, key, StringComparison.OrdinalIgnoreCase));

    /// <summary>The type a key below <paramref name="root"/> binds to (segments as in <c>Clusters:c:HealthCheck:Active:Interval</c>), or null.</summary>
    public static Type? TypeAt(Type root, IReadOnlyList<string> segments)
    {
        var type = root;
        foreach (var segment in segments)
        {
            switch (Classify(type, out var element))
            {
                case Kind.Map:
                case Kind.List:
                    type = element;
                    break;
                case Kind.Object when Key(type, segment) is { } property:
                    type = property.PropertyType;
                    break;
                default:
                    return null;
            }
        }
        return type;
    }
}

/// <summary>The <c>ReverseProxy</c> section as YARP's configuration provider reads it: routes and clusters by id.</summary>
internal sealed class ReverseProxyShape
{
    public IReadOnlyDictionary<string, RouteConfig>? Routes { get; init; }

    public IReadOnlyDictionary<string, ClusterConfig>? Clusters { get; init; }
}
