namespace Gateway.Listeners;

/// <summary>
/// A connection feature of the gateway's own socket transport (<c>Gateway:SocketTakeover</c>): after a 101 on the lean
/// HTTP/1.1 path, the relay may take the client's socket out of the transport and read and write it itself, so the
/// tunnel holds no pipes and no transport loops, and every message crosses no hand-off. Kestrel's own transport does
/// not offer it (its receive loop would race any other reader of the socket).
/// </summary>
internal interface ISocketTakeover
{
    /// <summary>
    /// Waits until everything already flushed to the connection's output (the 101) is on the wire, stops the transport's
    /// loops without closing the socket and gives it away as the client's stream: from then on the caller owns it (and
    /// closes it), and the connection's abort only signals its closed token. The stream starts with what the transport
    /// had already received and nobody read (a first frame sent in the same segment as the handshake; <c>Buffered</c>
    /// says how many bytes). Null when the connection is already ending: it stays the transport's.
    /// </summary>
    ValueTask<(Stream Client, int Buffered)?> TakeOverAsync();

    /// <summary>
    /// For a connection with a layer of its own over the transport (TLS): stops the transport's loops as
    /// <see cref="TakeOverAsync"/> does but keeps the socket, and from then on the pipes that layer holds read and write
    /// the socket directly, on the caller's own reads and writes. The layer (Kestrel's <c>SslStream</c>) goes on as it
    /// was; the connection still closes the socket when it is aborted or disposed. False when the connection has no such
    /// layer or is already ending.
    /// </summary>
    ValueTask<bool> GoDirectAsync();
}
