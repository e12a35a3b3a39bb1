using System.Net;
using System.Net.Sockets;

namespace RelayProbe;

/// <summary>
/// <c>RelayProbe --mode sockets|epoll --port P --backend-port B</c>: accepts TCP clients on 127.0.0.1:P, connects each to
/// 127.0.0.1:B and copies bytes both ways until either side ends. No WebSocket parsing, no HTTP: what is left is the cost
/// of waiting for, reading and writing a message, in the design the mode names. <c>--touch N</c> (sockets mode) gives each
/// tunnel a state object of its own and has each message touch N of its cache lines per direction: what per-tunnel memory
/// that a message finds cold costs, at a number of tunnels where it is cold.
/// </summary>
public static class Program
{
    public static async Task<int> Main(string[] args)
    {
        string? mode = null;
        int port = 0, backendPort = 0, touch = 0, stride = 64;
        for (var i = 0; i + 1 < args.Length; i += 2)
        {
            switch (args[i])
            {
                case "--mode": mode = args[i + 1]; break;
                case "--port": port = int.Parse(args[i + 1]); break;
                case "--backend-port": backendPort = int.Parse(args[i + 1]); break;
                case "--touch": touch = int.Parse(args[i + 1]); break;
                case "--touch-stride": stride = int.Parse(args[i + 1]); break;
                default:
                    Console.Error.WriteLine($"relayprobe: unknown option {args[i]}");
                    return 2;
            }
        }
        if (mode is not ("sockets" or "epoll") || port <= 0 || backendPort <= 0 || touch < 0 || stride < 1 || (touch > 0 && mode != "sockets"))
        {
            Console.Error.WriteLine("usage: RelayProbe --mode sockets|epoll --port P --backend-port B [--touch N [--touch-stride BYTES] (sockets only)]");
            return 2;
        }
        if (mode == "epoll" && !OperatingSystem.IsLinux())
        {
            Console.Error.WriteLine("relayprobe: --mode epoll needs Linux");
            return 2;
        }
        // As the gateway runs: socket completions on the socket engine's threads. Read once, when the sockets stack starts.
        Environment.SetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS", "1");

        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, port));
        listener.Listen(4096);
        var backend = new IPEndPoint(IPAddress.Loopback, backendPort);
        EpollRelay? epoll = mode == "epoll" ? new EpollRelay(Environment.ProcessorCount) : null;
        Console.WriteLine($"relayprobe: {mode} on 127.0.0.1:{port} to {backend}, {touch} lines {stride} bytes apart touched per message (pid {Environment.ProcessId})");

        while (true)
        {
            Socket client;
            try
            {
                client = await listener.AcceptAsync();
            }
            catch (SocketException)
            {
                continue;
            }
            _ = RelayAsync(client, backend, epoll, touch, stride);
        }
    }

    private static async Task RelayAsync(Socket client, IPEndPoint backendEndPoint, EpollRelay? epoll, int touch, int stride)
    {
        var backend = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            client.NoDelay = true;
            backend.NoDelay = true;
            await backend.ConnectAsync(backendEndPoint);
        }
        catch (SocketException)
        {
            client.Dispose();
            backend.Dispose();
            return;
        }
        if (epoll is not null)
        {
            epoll.Add(client, backend);
        }
        else
        {
            await SocketsRelay.RunAsync(client, backend, touch, stride);
        }
    }
}
