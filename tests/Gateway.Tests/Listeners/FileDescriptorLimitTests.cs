using Gateway.Listeners;

namespace Gateway.Tests.Listeners;

public sealed class FileDescriptorLimitTests
{
    [Fact]
    public void The_open_file_limit_is_read_from_proc()
    {
        // On Linux the soft limit is in /proc/self/limits; this machine family caps it at 20,000.
        Assert.True(OperatingSystem.IsLinux());
        var limit = FileDescriptorLimit.Read();
        Assert.NotNull(limit);
        Assert.InRange(limit!.Value, 64, long.MaxValue);
    }
}
