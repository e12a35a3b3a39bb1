using Microsoft.Extensions.Primitives;

namespace Gateway.Handshake;

/// <summary>Comma-separated header lists (RFC 9110 section 5.6.1), read in place: no splitting into new strings.</summary>
internal static class HeaderTokens
{
    private const string OptionalWhitespace = " \t";

    /// <summary>True when any element of any of the header's lines equals <paramref name="token"/>.</summary>
    public static bool Contains(StringValues values, ReadOnlySpan<char> token, StringComparison comparison = StringComparison.OrdinalIgnoreCase)
    {
        foreach (var value in values)
        {
            if (value is null)
            {
                continue;
            }
            var line = value.AsSpan();
            foreach (var range in line.Split(','))
            {
                if (line[range].Trim(OptionalWhitespace).Equals(token, comparison))
                {
                    return true;
                }
            }
        }
        return false;
    }

    /// <summary>The non-empty elements of the header's lines, trimmed, in order.</summary>
    public static Enumerator Elements(StringValues values) => new(values);

    public ref struct Enumerator
    {
        private readonly StringValues _values;
        private int _line;
        private string? _current;
        private int _offset;

        public Enumerator(StringValues values)
        {
            _values = values;
            _line = -1;
            _current = null;
            _offset = 0;
            Current = default;
        }

        public ReadOnlySpan<char> Current { get; private set; }

        public readonly Enumerator GetEnumerator() => this;

        public bool MoveNext()
        {
            while (true)
            {
                if (_current is null || _offset > _current.Length)
                {
                    if (++_line >= _values.Count)
                    {
                        return false;
                    }
                    _current = _values[_line] ?? string.Empty;
                    _offset = 0;
                }
                var rest = _current.AsSpan(_offset);
                var comma = rest.IndexOf(',');
                var element = comma < 0 ? rest : rest[..comma];
                _offset += comma < 0 ? rest.Length + 1 : comma + 1;
                element = element.Trim(OptionalWhitespace);
                if (!element.IsEmpty)
                {
                    Current = element;
                    return true;
                }
            }
        }
    }
}
