using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;

namespace Gateway.Handshake;

/// <summary>
/// <c>Kestrel:Limits:MaxConcurrentUpgradedConnections</c>, held by the gate for every HTTP/1.1 WebSocket handshake on
/// either path: Kestrel counts only the upgrades it performs itself, and only once the backend has already accepted,
/// so the lean path went uncounted and a refused upgrade had already cost a backend connection. Counted here, a
/// handshake past the limit is refused with 503 before any backend is contacted. HTTP/2 streams are not upgrades and
/// are not counted, as in Kestrel.
/// </summary>
internal sealed class UpgradedConnectionLimit(IOptions<KestrelServerOptions> kestrel)
{
    private readonly long _limit = kestrel.Value.Limits.MaxConcurrentUpgradedConnections ?? long.MaxValue;
    private long _open;

    public bool IsUnlimited => _limit == long.MaxValue;

    public bool TryEnter()
    {
        if (Interlocked.Increment(ref _open) <= _limit)
        {
            return true;
        }
        Interlocked.Decrement(ref _open);
        return false;
    }

    public void Exit() => Interlocked.Decrement(ref _open);
}
