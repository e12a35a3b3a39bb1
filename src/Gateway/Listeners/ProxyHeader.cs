using System.Net;

namespace Gateway.Listeners;

/// <summary>What a PROXY protocol header said about the connection it opened.</summary>
internal sealed class ProxyHeader
{
    public ProxyHeader(int version, bool local, IPEndPoint? source, IPEndPoint? destination)
    {
        Version = version;
        Local = local;
        Source = source;
        Destination = destination;
    }

    /// <summary>1 (text) or 2 (binary).</summary>
    public int Version { get; }

    /// <summary>A v2 LOCAL command: the balancer's own connection (a health check), not one it relays.</summary>
    public bool Local { get; }

    /// <summary>
    /// The client the balancer relays, or null when the connection's own addresses stand: LOCAL, v1 UNKNOWN, and the
    /// v2 families that carry no IP endpoint (UNSPEC, AF_UNIX, datagram transports).
    /// </summary>
    public IPEndPoint? Source { get; }

    /// <summary>The address the client connected to (the balancer's listener), when the header names one.</summary>
    public IPEndPoint? Destination { get; }
}

/// <summary>Why a connection on a PROXY protocol listener was closed before anything else read it.</summary>
internal enum ProxyProtocolRejection
{
    /// <summary>The bytes are a TLS handshake or a request line: a client connected without a balancer, or the balancer sends no header.</summary>
    Missing,

    /// <summary>The bytes are neither a PROXY signature nor anything recognisable.</summary>
    Garbage,

    /// <summary>A PROXY signature followed by something the specification does not allow.</summary>
    Malformed,

    /// <summary>A v1 line without CRLF in 107 bytes, or a v2 header longer than the gateway accepts.</summary>
    Oversized,

    /// <summary>The peer closed (or reset) the connection after part of a header.</summary>
    Truncated,

    /// <summary>The peer closed the connection without sending a byte (a TCP health check, a port scan).</summary>
    Empty,

    /// <summary>No complete header within the timeout.</summary>
    Timeout,

    /// <summary>The peer is not in the listener's <c>ProxyProtocolTrustedNetworks</c>: it may not name a client.</summary>
    Untrusted,
}

internal static class ProxyProtocolRejections
{
    /// <summary>The metric label of each reason, indexed by the enum's value.</summary>
    public static readonly string[] Tags = ["missing", "garbage", "malformed", "oversized", "truncated", "empty", "timeout", "untrusted_peer"];

    public static string Tag(this ProxyProtocolRejection reason) => Tags[(int)reason];
}
