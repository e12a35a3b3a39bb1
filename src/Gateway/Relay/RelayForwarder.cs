using Yarp.ReverseProxy.Forwarder;

namespace Gateway.Relay;

/// <summary>
/// YARP's forwarder with the relay after it: YARP forwards the handshake (transforms, the backend connection, the 101
/// or the refusal) and returns at once, having found nothing to copy (<see cref="FinishedStream"/>); then, still inside
/// YARP's forwarder step, the tunnel relays until it ends. So the destination's and cluster's concurrency counts
/// (least-requests, bounded-load hashing) and passive health still see the tunnel for its whole life, while YARP's
/// per-request state is released at the 101.
/// </summary>
internal sealed class RelayForwarder(IHttpForwarder inner) : IHttpForwarder
{
    public ValueTask<ForwarderError> SendAsync(HttpContext context, string destinationPrefix, HttpMessageInvoker httpClient,
        ForwarderRequestConfig requestConfig, HttpTransformer transformer) =>
        SendAsync(context, destinationPrefix, httpClient, requestConfig, transformer, CancellationToken.None);

    public async ValueTask<ForwarderError> SendAsync(HttpContext context, string destinationPrefix, HttpMessageInvoker httpClient,
        ForwarderRequestConfig requestConfig, HttpTransformer transformer, CancellationToken cancellationToken)
    {
        var error = await inner.SendAsync(context, destinationPrefix, httpClient, requestConfig, transformer, cancellationToken)
            .ConfigureAwait(false);
        if (error == ForwarderError.None && context.Features.Get<RelayTunnel>() is { ReadyToRelay: true } tunnel)
        {
            return await tunnel.RelayAsync(requestConfig.ActivityTimeout).ConfigureAwait(false);
        }
        return error;
    }
}
