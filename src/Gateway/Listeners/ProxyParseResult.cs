namespace Gateway.Listeners;

internal enum ProxyParseStatus
{
    /// <summary>Not enough bytes yet to decide.</summary>
    Incomplete,

    /// <summary>A whole, valid header.</summary>
    Complete,

    /// <summary>Not a valid header, whatever follows: the connection must be closed.</summary>
    Rejected,
}

/// <summary>The parser's verdict on the bytes a connection has sent so far.</summary>
internal readonly struct ProxyParseResult
{
    private ProxyParseResult(ProxyParseStatus status, int length, ProxyHeader? header, ProxyProtocolRejection rejection, string? detail)
    {
        Status = status;
        Length = length;
        Header = header;
        Rejection = rejection;
        Detail = detail;
    }

    public ProxyParseStatus Status { get; }

    /// <summary>Complete: the header's length, to skip. Incomplete: how many bytes must be there before parsing again can decide.</summary>
    public int Length { get; }

    public ProxyHeader? Header { get; }

    public ProxyProtocolRejection Rejection { get; }

    /// <summary>What exactly was wrong, for the log (a constant: rejecting allocates nothing).</summary>
    public string? Detail { get; }

    public static ProxyParseResult Incomplete(int needed) => new(ProxyParseStatus.Incomplete, needed, null, default, null);

    public static ProxyParseResult Complete(int length, ProxyHeader header) => new(ProxyParseStatus.Complete, length, header, default, null);

    public static ProxyParseResult Reject(ProxyProtocolRejection reason, string detail) => new(ProxyParseStatus.Rejected, 0, null, reason, detail);
}
