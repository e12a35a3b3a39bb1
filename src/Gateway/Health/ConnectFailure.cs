using System.Net.Http;
using System.Net.Sockets;
using Yarp.ReverseProxy.Forwarder;

namespace Gateway.Health;

/// <summary>
/// Tells a failure to open the connection to a destination (nothing was sent to it) from every other forwarding error,
/// from what YARP left in <see cref="IForwarderErrorFeature"/>.
/// </summary>
internal static class ConnectFailure
{
    /// <summary>True when the destination could not be connected to; <paramref name="message"/> says why, in one line.</summary>
    public static bool TryGet(ForwarderError error, Exception? exception, out string message)
    {
        switch (error)
        {
            // Refused, unreachable, DNS: SocketsHttpHandler and UpgradeConnector both throw these before writing a byte.
            // UpgradeConnector's own connect timeout arrives here too (ConnectionError around the cancellation).
            case ForwarderError.Request when exception is HttpRequestException request && IsConnectError(request):
                message = request.Message;
                return true;
            // SocketsHttpHandler's ConnectTimeout: a cancellation around a TimeoutException, which YARP reports as a
            // timeout (504). YARP's own activity timeout and the client going away cancel without a TimeoutException.
            case ForwarderError.RequestTimedOut when exception is OperationCanceledException { InnerException: TimeoutException timeout }:
                message = timeout.Message;
                return true;
            default:
                message = string.Empty;
                return false;
        }
    }

    private static bool IsConnectError(HttpRequestException exception) => exception.HttpRequestError switch
    {
        HttpRequestError.ConnectionError or HttpRequestError.NameResolutionError => true,
        // A handler that does not classify its errors: only a socket error that can come from connect() counts.
        HttpRequestError.Unknown => exception.InnerException is SocketException socket && IsConnectSocketError(socket.SocketErrorCode),
        _ => false,
    };

    private static bool IsConnectSocketError(SocketError error) => error
        is SocketError.ConnectionRefused or SocketError.HostUnreachable or SocketError.NetworkUnreachable or SocketError.NetworkDown
        or SocketError.HostDown or SocketError.TimedOut or SocketError.HostNotFound or SocketError.TryAgain or SocketError.AddressNotAvailable;
}
