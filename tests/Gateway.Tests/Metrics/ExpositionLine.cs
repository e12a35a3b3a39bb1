using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Gateway.Tests.Metrics;

/// <summary>A parsed sample line: <c>name{label="value",...} value [timestamp]</c>.</summary>
internal sealed record ExpositionSample(int Line, string Name, IReadOnlyList<KeyValuePair<string, string>> Labels, double Value)
{
    public string? Label(string name) => Labels.FirstOrDefault(l => l.Key == name).Value;

    /// <summary>Name and label set, label order ignored: what makes a series unique.</summary>
    public string SeriesKey(string? without = null) =>
        Name + "{" + string.Join(",", Labels.Where(l => l.Key != without).OrderBy(l => l.Key, StringComparer.Ordinal)
            .Select(l => l.Key + "=" + l.Value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace(",", "\\,", StringComparison.Ordinal))) + "}";
}

/// <summary>A parsed <c># HELP name text</c> or <c># TYPE name type</c> line.</summary>
internal sealed record ExpositionMetadata(int Line, string Keyword, string Name, string Argument);

/// <summary>
/// Reads single lines of the Prometheus text exposition format, version 0.0.4
/// (https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format). Blanks and tabs may separate
/// tokens, as in Prometheus's own parser (expfmt); anything the format does not allow is a problem.
/// </summary>
internal static partial class ExpositionLine
{
    public static readonly string[] Types = ["counter", "gauge", "histogram", "summary", "untyped"];

    public static bool IsMetricName(string name) => MetricName().IsMatch(name);

    /// <summary>Returns the metadata line, or null for a plain comment or a broken line (then a problem is added).</summary>
    public static ExpositionMetadata? ParseComment(string line, int number, List<ExpositionProblem> problems)
    {
        var i = line.IndexOf('#') + 1;
        SkipBlanks(line, ref i);
        var keyword = Token(line, ref i);
        if (keyword is not ("HELP" or "TYPE"))
        {
            return null; // any other comment is ignored by the format
        }
        SkipBlanks(line, ref i);
        var name = Token(line, ref i);
        if (name.Length == 0)
        {
            return Problem<ExpositionMetadata>(problems, number, ExpositionRule.Syntax, $"{keyword} without a metric name");
        }
        if (!IsMetricName(name))
        {
            return Problem<ExpositionMetadata>(problems, number, ExpositionRule.MetricName, $"'{name}' is not a metric name");
        }
        SkipBlanks(line, ref i);
        if (keyword == "HELP")
        {
            var help = Unescape(line, ref i, '\0', allowQuote: false, out var bad);
            if (bad is not null)
            {
                // The line is still the family's HELP: only its text is broken.
                problems.Add(new ExpositionProblem(number, ExpositionRule.Escape, $"HELP text has the escape '\\{bad}' (only \\\\ and \\n)"));
            }
            return new ExpositionMetadata(number, keyword, name, help);
        }
        var type = Token(line, ref i);
        SkipBlanks(line, ref i);
        if (type.Length == 0 || i < line.Length)
        {
            return Problem<ExpositionMetadata>(problems, number, ExpositionRule.Syntax, "TYPE takes a metric name and one type");
        }
        if (!Types.Contains(type))
        {
            return Problem<ExpositionMetadata>(problems, number, ExpositionRule.UnknownType, $"'{type}' is not one of {string.Join(", ", Types)}");
        }
        return new ExpositionMetadata(number, keyword, name, type);
    }

    /// <summary>Returns the sample, or null when the line is broken (then a problem is added).</summary>
    public static ExpositionSample? ParseSample(string line, int number, List<ExpositionProblem> problems)
    {
        var i = 0;
        SkipBlanks(line, ref i);
        var start = i;
        while (i < line.Length && line[i] is not (' ' or '\t' or '{'))
        {
            i++;
        }
        var name = line[start..i];
        if (!IsMetricName(name))
        {
            return Problem<ExpositionSample>(problems, number, ExpositionRule.MetricName, $"'{name}' is not a metric name");
        }
        SkipBlanks(line, ref i);
        var labels = new List<KeyValuePair<string, string>>();
        if (i < line.Length && line[i] == '{' && !ParseLabels(line, ref i, number, labels, problems))
        {
            return null;
        }
        SkipBlanks(line, ref i);
        var valueToken = Token(line, ref i);
        if (valueToken.Length == 0)
        {
            return Problem<ExpositionSample>(problems, number, ExpositionRule.Syntax, "a sample without a value");
        }
        if (!TryParseFloat(valueToken, out var value))
        {
            return Problem<ExpositionSample>(problems, number, ExpositionRule.Value, $"'{valueToken}' is not a float");
        }
        SkipBlanks(line, ref i);
        var timestamp = Token(line, ref i);
        var timestampValid = Timestamp().IsMatch(timestamp) && long.TryParse(timestamp, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _);
        if (timestamp.Length > 0 && !timestampValid)
        {
            return Problem<ExpositionSample>(problems, number, ExpositionRule.Timestamp, $"'{timestamp}' is not milliseconds since the epoch (an int64)");
        }
        SkipBlanks(line, ref i);
        return i < line.Length
            ? Problem<ExpositionSample>(problems, number, ExpositionRule.Syntax, $"unexpected '{line[i..]}' after the value and timestamp")
            : new ExpositionSample(number, name, labels, value);
    }

    /// <summary>
    /// A float as Prometheus reads it (Go's strconv.ParseFloat): decimal notation, or Inf/Infinity/NaN in any case;
    /// hexadecimal floats, which Go also takes, are refused here as no exporter should write them.
    /// </summary>
    public static bool TryParseFloat(string token, out double value)
    {
        var unsigned = token.TrimStart('+', '-');
        var negative = token.StartsWith('-');
        if (token.Length - unsigned.Length <= 1 && unsigned.ToLowerInvariant() is "inf" or "infinity")
        {
            value = negative ? double.NegativeInfinity : double.PositiveInfinity;
            return true;
        }
        if (token.ToLowerInvariant() == "nan")
        {
            value = double.NaN;
            return true;
        }
        value = 0;
        return Decimal().IsMatch(token) && double.TryParse(token, NumberStyles.Float, CultureInfo.InvariantCulture, out value);
    }

    /// <summary>Reads <c>{name="value",...}</c> from the opening brace; a trailing comma is allowed, as in expfmt.</summary>
    private static bool ParseLabels(string line, ref int i, int number, List<KeyValuePair<string, string>> labels, List<ExpositionProblem> problems)
    {
        i++; // '{'
        while (true)
        {
            SkipBlanks(line, ref i);
            if (i < line.Length && line[i] == '}')
            {
                i++;
                return true;
            }
            var start = i;
            while (i < line.Length && line[i] is not (' ' or '\t' or '=' or ',' or '}'))
            {
                i++;
            }
            var name = line[start..i];
            if (!LabelName().IsMatch(name) || name.StartsWith("__", StringComparison.Ordinal))
            {
                Problem<ExpositionSample>(problems, number, ExpositionRule.LabelName, $"'{name}' is not a label name{(name.StartsWith("__", StringComparison.Ordinal) ? " (__ is reserved)" : "")}");
                return false;
            }
            SkipBlanks(line, ref i);
            if (!Expect(line, ref i, '='))
            {
                Problem<ExpositionSample>(problems, number, ExpositionRule.Syntax, $"label '{name}' without '='");
                return false;
            }
            SkipBlanks(line, ref i);
            if (!Expect(line, ref i, '"'))
            {
                Problem<ExpositionSample>(problems, number, ExpositionRule.Syntax, $"label '{name}' has an unquoted value");
                return false;
            }
            var value = Unescape(line, ref i, '"', allowQuote: true, out var bad);
            if (bad is not null)
            {
                Problem<ExpositionSample>(problems, number, ExpositionRule.Escape, $"label '{name}' has the escape '\\{bad}' (only \\\\, \\\" and \\n)");
                return false;
            }
            if (!Expect(line, ref i, '"'))
            {
                Problem<ExpositionSample>(problems, number, ExpositionRule.Syntax, $"label '{name}' has an unterminated value");
                return false;
            }
            if (labels.Any(l => l.Key == name))
            {
                Problem<ExpositionSample>(problems, number, ExpositionRule.DuplicateLabel, $"label '{name}' appears twice");
                return false;
            }
            labels.Add(new(name, value));
            SkipBlanks(line, ref i);
            if (Expect(line, ref i, ','))
            {
                continue;
            }
            if (!Expect(line, ref i, '}'))
            {
                Problem<ExpositionSample>(problems, number, ExpositionRule.Syntax, "labels are not closed by '}'");
                return false;
            }
            return true;
        }
    }

    /// <summary>Reads up to <paramref name="end"/> (not consumed) or the end of the line; <paramref name="bad"/> is an escape the context forbids.</summary>
    private static string Unescape(string line, ref int i, char end, bool allowQuote, out char? bad)
    {
        var text = new StringBuilder();
        bad = null;
        for (; i < line.Length && line[i] != end; i++)
        {
            if (line[i] != '\\')
            {
                text.Append(line[i]);
                continue;
            }
            var next = ++i < line.Length ? line[i] : ' ';
            switch (next)
            {
                case '\\':
                    text.Append('\\');
                    break;
                case 'n':
                    text.Append('\n');
                    break;
                case '"' when allowQuote:
                    text.Append('"');
                    break;
                default:
                    bad = next;
                    return text.ToString();
            }
        }
        return text.ToString();
    }

    private static string Token(string line, ref int i)
    {
        var start = i;
        while (i < line.Length && line[i] is not (' ' or '\t'))
        {
            i++;
        }
        return line[start..i];
    }

    private static void SkipBlanks(string line, ref int i)
    {
        while (i < line.Length && line[i] is (' ' or '\t'))
        {
            i++;
        }
    }

    private static bool Expect(string line, ref int i, char c)
    {
        if (i < line.Length && line[i] == c)
        {
            i++;
            return true;
        }
        return false;
    }

    private static T? Problem<T>(List<ExpositionProblem> problems, int line, ExpositionRule rule, string detail) where T : class
    {
        problems.Add(new ExpositionProblem(line, rule, detail));
        return null;
    }

    [GeneratedRegex("^[a-zA-Z_:][a-zA-Z0-9_:]*$")]
    private static partial Regex MetricName();

    [GeneratedRegex("^[a-zA-Z_][a-zA-Z0-9_]*$")]
    private static partial Regex LabelName();

    [GeneratedRegex(@"^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?$")]
    private static partial Regex Decimal();

    [GeneratedRegex("^[+-]?[0-9]+$")]
    private static partial Regex Timestamp();
}
