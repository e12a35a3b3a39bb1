using Yarp.ReverseProxy.Forwarder;

namespace Gateway.Relay;

/// <summary>
/// What went wrong with a handshake or a tunnel, in YARP's public error feature: the error count, the connect retry and
/// passive health read it as they read what YARP's forwarder leaves for plain requests.
/// </summary>
internal sealed class ForwarderFailure(ForwarderError error, Exception? exception) : IForwarderErrorFeature
{
    /// <summary>The backend ended the tunnel badly (lost, broke protocol, stopped answering), as YARP says of a backend stream that failed.</summary>
    public static readonly ForwarderFailure BackendFault = new(ForwarderError.UpgradeResponseDestination, null);

    public ForwarderError Error => error;

    public Exception? Exception => exception;
}
