using System.Runtime.InteropServices;

namespace RelayProbe;

/// <summary>Linux epoll(7) through libc: what the probe's own readiness loop needs, nothing more.</summary>
internal static unsafe partial class Epoll
{
    public const int CtlAdd = 1;
    public const int CtlDel = 2;
    public const uint In = 0x001;
    public const uint Err = 0x008;
    public const uint Hup = 0x010;
    public const uint RdHup = 0x2000;

    /// <summary><c>struct epoll_event</c> is packed on x86-64 (12 bytes) and naturally aligned elsewhere (16).</summary>
    public static readonly int EventSize = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 12 : 16;

    private static readonly int DataOffset = RuntimeInformation.ProcessArchitecture == Architecture.X64 ? 4 : 8;

    [LibraryImport("libc", EntryPoint = "epoll_create1", SetLastError = true)]
    public static partial int Create(int flags);

    [LibraryImport("libc", EntryPoint = "epoll_ctl", SetLastError = true)]
    private static partial int Control(int epoll, int op, int fd, byte* ev);

    [LibraryImport("libc", EntryPoint = "epoll_wait", SetLastError = true)]
    public static partial int Wait(int epoll, byte* events, int maxEvents, int timeoutMs);

    public static int Add(int epoll, int fd, uint events, ulong data)
    {
        var ev = stackalloc byte[16];
        *(uint*)ev = events;
        *(ulong*)(ev + DataOffset) = data;
        return Control(epoll, CtlAdd, fd, ev);
    }

    public static int Remove(int epoll, int fd) => Control(epoll, CtlDel, fd, null);

    public static uint EventsAt(byte* events, int index) => *(uint*)(events + index * EventSize);

    public static ulong DataAt(byte* events, int index) => *(ulong*)(events + index * EventSize + DataOffset);
}
