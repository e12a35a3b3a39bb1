namespace Gateway.Relay;

// What the admin API sees of a tunnel and may do to it.
internal sealed partial class RelayTunnel
{
    private static long s_lastId;

    /// <summary>A number for the admin API, unique in this process.</summary>
    public long Id { get; } = Interlocked.Increment(ref s_lastId);

    /// <summary>A consistent-enough look at the tunnel now (its counters are read while it relays).</summary>
    internal TunnelDescription Describe()
    {
        var now = _sweeper.Now;
        var lastHeard = Math.Max(Volatile.Read(ref _clientAlive.LastHeard), Volatile.Read(ref _backendAlive.LastHeard));
        return new TunnelDescription(Id, RouteId, _cluster, _destination, _clientAddress?.ToString(),
            _handshake.Protocol, _handshake.Scheme, _handshake.Subprotocol, _sweeper.Time.GetElapsedTime(_openedTimestamp),
            TimeSpan.FromMilliseconds(Math.Max(0, now - lastHeard)),
            _fromClient.Messages, _fromClient.PayloadBytes, _fromBackend.Messages, _fromBackend.PayloadBytes, _handshake.UserId);
    }

    /// <summary>Codes an operator may close with: those RFC 6455 §7.4.1 lets an endpoint send, and the private range.</summary>
    internal static bool IsSendableCloseCode(int code) =>
        code is 1000 or 1001 or 1008 or 1011 or 1012 or 1013 or (>= 3000 and <= 4999);

    /// <summary>The operator asked: both sides hear <paramref name="code"/> with <paramref name="reason"/>.</summary>
    internal void CloseByOperator(ushort code, string reason) => Run(CloseByOperatorAsync(code, reason));

    private async Task CloseByOperatorAsync(ushort code, string reason)
    {
        if (!BeginClosing())
        {
            return;
        }
        Decide(RelayMetrics.ClosedBy.Admin, code);
        await SendCloseAsync(toBackend: false, code, reason, InjectionWait.ForBoundary).ConfigureAwait(false);
        await SendCloseAsync(toBackend: true, code, reason, InjectionWait.ForBoundary).ConfigureAwait(false);
    }
}

/// <summary>One open tunnel as <c>GET /connections</c> lists it.</summary>
internal readonly record struct TunnelDescription(long Id, string Route, string Cluster, string Destination, string? Client,
    string Protocol, string Scheme, string? Subprotocol, TimeSpan Age, TimeSpan Idle,
    long MessagesFromClient, long BytesFromClient, long MessagesFromBackend, long BytesFromBackend, string? User = null);
