using System.Globalization;

namespace Gateway.Configuration;

/// <summary>
/// Durations as operators write them: <c>250ms</c>, <c>30s</c>, <c>5m</c>, <c>1h</c>, <c>1d</c> and sums such as
/// <c>1m30s</c> (nginx's and Go's notation), beside .NET's <c>hh:mm:ss</c>. The file's values at keys that hold a
/// duration (<see cref="ConfigShape"/>) are rewritten to <c>hh:mm:ss</c> when the file is read, so the binder, YARP and
/// Kestrel, which parse only .NET's form, read them unchanged.
/// </summary>
internal static class Durations
{
    /// <summary>Sections of the file whose duration keys are rewritten, with the type that describes each.</summary>
    private static readonly (string Prefix, Type Shape)[] Roots =
    [
        (GatewayOptions.SectionName, typeof(GatewayOptions)),
        (GatewayOptions.ReverseProxySectionName, typeof(ReverseProxyShape)),
        ("Kestrel:Limits", typeof(Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerLimits)),
    ];

    public static bool TryParse(string? text, out TimeSpan value)
    {
        value = default;
        if (string.IsNullOrWhiteSpace(text))
        {
            return false;
        }
        text = text.Trim();
        if (TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out value))
        {
            return true;
        }
        var negative = text.StartsWith('-');
        var rest = negative ? text.AsSpan(1) : text.AsSpan();
        if (rest.IsEmpty)
        {
            return false;
        }
        var total = TimeSpan.Zero;
        while (!rest.IsEmpty)
        {
            var digits = 0;
            while (digits < rest.Length && (char.IsAsciiDigit(rest[digits]) || rest[digits] == '.'))
            {
                digits++;
            }
            var letters = digits;
            while (letters < rest.Length && char.IsAsciiLetter(rest[letters]))
            {
                letters++;
            }
            if (digits == 0 || letters == digits
                || !double.TryParse(rest[..digits], NumberStyles.AllowDecimalPoint, CultureInfo.InvariantCulture, out var number)
                || Unit(rest[digits..letters]) is not { } unit)
            {
                value = default;
                return false;
            }
            try
            {
                total += unit * number;
            }
            catch (OverflowException)
            {
                value = default;
                return false;
            }
            rest = rest[letters..];
        }
        value = negative ? -total : total;
        return true;
    }

    private static TimeSpan? Unit(ReadOnlySpan<char> unit) => unit switch
    {
        "ms" => TimeSpan.FromMilliseconds(1),
        "s" => TimeSpan.FromSeconds(1),
        "m" => TimeSpan.FromMinutes(1),
        "h" => TimeSpan.FromHours(1),
        "d" => TimeSpan.FromDays(1),
        _ => null,
    };

    /// <summary>Rewrites, in the file's flattened keys, each operator-style duration at a duration key to <c>d.hh:mm:ss.fffffff</c>.</summary>
    public static void Normalize(IDictionary<string, string?> data)
    {
        foreach (var (key, text) in data.ToArray())
        {
            if (text is null || TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out _) || !TryParse(text, out var value))
            {
                continue;
            }
            foreach (var (prefix, shape) in Roots)
            {
                if (key.Length > prefix.Length && key[prefix.Length] == ':' && key.StartsWith(prefix, StringComparison.OrdinalIgnoreCase)
                    && ConfigShape.TypeAt(shape, key[(prefix.Length + 1)..].Split(':')) is { } type
                    && (Nullable.GetUnderlyingType(type) ?? type) == typeof(TimeSpan))
                {
                    data[key] = value.ToString("c", CultureInfo.InvariantCulture);
                    break;
                }
            }
        }
    }
}
