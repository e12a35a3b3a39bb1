using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Gateway.Configuration;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;

namespace Gateway.Listeners.Takeover;

/// <summary>
/// <c>Gateway:SocketTakeover</c>: the public listeners' transport (the admin server keeps Kestrel's, on a server of its
/// own). Binds IP endpoints as Kestrel's socket transport would, SO_REUSEPORT included; the pipes' limits and schedulers
/// are Kestrel's defaults and <c>InlineCompletions</c>.
/// </summary>
internal sealed class TakeoverTransportFactory(GatewayOptions options, IMemoryPoolFactory<byte>? pools, ILoggerFactory loggers)
    : IConnectionListenerFactory, IConnectionListenerFactorySelector
{
    // Kestrel's socket transport defaults: MaxReadBufferSize 1 MiB, MaxWriteBufferSize 64 KiB, resuming at half.
    private const long MaxReadBufferSize = 1024 * 1024;
    private const long MaxWriteBufferSize = 64 * 1024;

    private readonly ReusePortListenSockets? _reusePort = options.ReusePort ? ReusePortListenSockets.For(options) : null;
    private readonly ILogger _logger = loggers.CreateLogger("Gateway.Listeners.Takeover");
    private int _announced;

    public bool CanBind(EndPoint endpoint) => endpoint is IPEndPoint;

    public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        if (Interlocked.Exchange(ref _announced, 1) == 0)
        {
            Log.Enabled(_logger);
        }
        Socket? socket = null;
        try
        {
            socket = _reusePort?.CreateBoundListenSocket(endpoint) ?? SocketTransportOptions.CreateDefaultBoundListenSocket(endpoint);
            socket.Listen(options.ListenBacklog);
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            socket?.Dispose();
            // As Kestrel's transport: Kestrel then names the endpoint (and KestrelListeners.DescribeBindFailure reads it).
            throw new AddressInUseException(ex.Message, ex);
        }
        catch
        {
            socket?.Dispose();
            throw;
        }
        var pool = pools?.Create(new MemoryPoolOptions { Owner = "gateway" }) ?? MemoryPool<byte>.Shared;
        // With inline completions the pipes' continuations run where the socket completed, as Kestrel's do.
        var scheduler = options.InlineCompletions ? PipeScheduler.Inline : PipeScheduler.ThreadPool;
        var segment = Math.Min(4096, pool.MaxBufferSize);
        var input = new PipeOptions(pool, scheduler, scheduler, MaxReadBufferSize, MaxReadBufferSize / 2, segment, useSynchronizationContext: false);
        var output = new PipeOptions(pool, scheduler, scheduler, MaxWriteBufferSize, MaxWriteBufferSize / 2, segment, useSynchronizationContext: false);
        return new ValueTask<IConnectionListener>(new TakeoverListener(socket, pool, input, output, _logger));
    }
}
