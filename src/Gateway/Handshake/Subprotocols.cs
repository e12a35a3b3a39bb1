using System.Text;
using Gateway.Http;
using Microsoft.Extensions.Primitives;

namespace Gateway.Handshake;

/// <summary>
/// A route's subprotocol allow-list (RFC 6455 section 4.2.1 item 8, section 11.3.4). Offered protocols outside it
/// are removed from the <c>Sec-WebSocket-Protocol</c> the backend sees, so the backend can only pick an allowed one.
/// Names compare exactly: they are opaque tokens.
/// </summary>
internal sealed class SubprotocolFilter
{
    private readonly string[] _allowed;
    private readonly bool _required;

    public SubprotocolFilter(IReadOnlyList<string> allowed, bool required)
    {
        _allowed = allowed.Select(a => a.Trim()).ToArray();
        _required = required;
    }

    /// <summary>
    /// Returns false when the handshake must be refused (a protocol is required and none allowed remains). When
    /// something was removed, <paramref name="forwarded"/> is the new header value (empty: remove the header) and
    /// <paramref name="changed"/> is true; an unchanged header allocates nothing.
    /// </summary>
    public bool TryFilter(StringValues offered, out StringValues forwarded, out bool changed)
    {
        forwarded = offered;
        changed = false;
        if (_allowed.Length == 0)
        {
            return !_required || HasAny(offered);
        }

        int total = 0, kept = 0;
        foreach (var element in HttpSyntax.ListElements(offered))
        {
            total++;
            if (IsAllowed(element))
            {
                kept++;
            }
        }
        if (kept == total)
        {
            return !_required || kept > 0;
        }

        changed = true;
        if (kept == 0)
        {
            forwarded = StringValues.Empty;
            return !_required;
        }
        var builder = new StringBuilder();
        foreach (var element in HttpSyntax.ListElements(offered))
        {
            if (IsAllowed(element))
            {
                builder.Append(builder.Length == 0 ? "" : ", ").Append(element);
            }
        }
        forwarded = builder.ToString();
        return true;
    }

    private bool IsAllowed(ReadOnlySpan<char> protocol)
    {
        foreach (var allowed in _allowed)
        {
            if (protocol.Equals(allowed, StringComparison.Ordinal))
            {
                return true;
            }
        }
        return false;
    }

    private static bool HasAny(StringValues offered)
    {
        foreach (var _ in HttpSyntax.ListElements(offered))
        {
            return true;
        }
        return false;
    }
}
