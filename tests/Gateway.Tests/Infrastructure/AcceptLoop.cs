using System.Net.Sockets;

namespace Gateway.Tests.Infrastructure;

/// <summary>The raw test backends' accept loop: every connection to <paramref name="listener"/> goes to <paramref name="accepted"/> until <paramref name="stop"/>.</summary>
internal static class AcceptLoop
{
    public static async Task RunAsync(TcpListener listener, CancellationToken stop, Action<TcpClient> accepted)
    {
        while (!stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await listener.AcceptTcpClientAsync(stop);
            }
            catch (Exception) when (stop.IsCancellationRequested)
            {
                return;
            }
            accepted(client);
        }
    }
}
