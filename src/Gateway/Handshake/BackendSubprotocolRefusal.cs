namespace Gateway.Handshake;

/// <summary>Left by the relay's <c>BackendSubprotocolCheck</c> for the gate, which answers the client once YARP returns.</summary>
internal sealed class BackendSubprotocolRefusal
{
    public BackendSubprotocolRefusal(string detail) => Detail = detail;

    public string Detail { get; }
}
