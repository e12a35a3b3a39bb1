using System.Diagnostics;

namespace Gateway.KeyRing;

/// <summary>
/// An exclusive lock on a file in the shared key directory, for the moment it takes to look at the key ring and add
/// its first key. .NET opens a file with <see cref="FileShare.None"/> under <c>flock(2)</c> <c>LOCK_EX</c> on Linux:
/// the kernel drops it when its holder exits (a crashed replica leaves no stale lock), on NFS Linux makes it a lock on
/// the server (unless mounted <c>nolock</c> or <c>local_lock</c>), and every open is a holder of its own, so it excludes
/// gateways in other processes and in this one alike. Where the file system refuses <c>flock</c> altogether, .NET
/// opens the file anyway, unlocked: the README says to start one replica first there.
/// </summary>
internal sealed class KeyRingLock : IDisposable
{
    /// <summary>Beside the keys; Data Protection's file repository reads only <c>*.xml</c> there.</summary>
    public const string FileName = ".gateway-key-ring.lock";

    private static readonly TimeSpan FirstPause = TimeSpan.FromMilliseconds(10);
    private static readonly TimeSpan LongestPause = TimeSpan.FromMilliseconds(200);

    private readonly FileStream _file;

    private KeyRingLock(FileStream file) => _file = file;

    /// <summary>
    /// Takes the lock, waiting up to <paramref name="wait"/> while another holds it. Without it after that (a holder
    /// that hangs, a directory where the file cannot be opened), the lock is null and the error says why.
    /// </summary>
    /// <param name="onContended">Called once, when the lock is found held.</param>
    public static async Task<(KeyRingLock? Lock, string? Error)> AcquireAsync(string directory, TimeSpan wait, Action onContended,
        CancellationToken cancellationToken)
    {
        var path = Path.Combine(directory, FileName);
        // Wall-clock time, not the gateway's TimeProvider: the wait is for other processes, which a test's clock does not move.
        var waited = Stopwatch.StartNew();
        var pause = FirstPause;
        var contended = false;
        while (true)
        {
            try
            {
                return (new KeyRingLock(new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None)), null);
            }
            catch (IOException ex)
            {
                // Held elsewhere (EWOULDBLOCK), or a passing fault of a network file system: both are worth the wait.
                if (waited.Elapsed >= wait)
                {
                    return (null, ex.Message);
                }
            }
            catch (UnauthorizedAccessException ex)
            {
                return (null, ex.Message);
            }
            if (!contended)
            {
                contended = true;
                onContended();
            }
            await Task.Delay(pause, cancellationToken);
            pause = pause * 2 < LongestPause ? pause * 2 : LongestPause;
        }
    }

    public void Dispose() => _file.Dispose();
}
