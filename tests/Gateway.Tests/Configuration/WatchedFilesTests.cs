using Gateway.Tests.Infrastructure;
using Gateway.Configuration;
using Gateway.Tests.Tls;

namespace Gateway.Tests.Configuration;

/// <summary>What the periodic check sees: every link in a path resolved, so a Kubernetes secret swap is a change.</summary>
public sealed class WatchedFilesTests : IDisposable
{
    private readonly TestCertificates _certificates = new();

    public void Dispose() => _certificates.Dispose();

    [Fact]
    public void A_kubernetes_secret_swap_changes_the_state_although_the_configured_links_stay_the_same()
    {
        var (firstPem, firstKey, _) = _certificates.IssueServer("first", "localhost");
        var (nextPem, nextKey, _) = _certificates.IssueServer("next", "localhost");
        var mount = new SecretMount(_certificates.Directory);
        mount.Publish(firstPem, firstKey);
        var files = new WatchedFiles([mount.CertificatePath, mount.KeyPath]);
        var before = files.Snapshot();
        Assert.All(before, state => Assert.StartsWith(Path.Combine(mount.Directory, "..2026_"), state.ResolvedPath));
        Assert.True(WatchedFiles.Same(before, files.Snapshot()), "nothing changed yet");

        // tls.crt and tls.key are the same links before and after: only ..data points elsewhere.
        var link = new FileInfo(mount.CertificatePath).LinkTarget;
        mount.Publish(nextPem, nextKey);
        Assert.Equal(link, new FileInfo(mount.CertificatePath).LinkTarget);

        var after = files.Snapshot();
        Assert.False(WatchedFiles.Same(before, after));
        Assert.NotEqual(before[0].ResolvedPath, after[0].ResolvedPath);
        Assert.Equal(File.ReadAllText(nextPem), File.ReadAllText(after[0].ResolvedPath!));
    }

    [Fact]
    public void A_copy_that_keeps_the_size_and_time_is_a_change_and_a_missing_file_is_too()
    {
        var path = Path.Combine(_certificates.Directory, "same-size.pem");
        File.WriteAllText(path, "aaaa");
        var time = File.GetLastWriteTimeUtc(path);
        var files = new WatchedFiles([path]);
        var before = files.Snapshot();

        // As `cp -p` leaves it: new contents, the same size, the old time.
        File.WriteAllText(path, "bbbb");
        File.SetLastWriteTimeUtc(path, time);
        var copied = files.Snapshot();
        Assert.Equal((before[0].Length, before[0].LastWriteTicks), (copied[0].Length, copied[0].LastWriteTicks));
        Assert.False(WatchedFiles.Same(before, copied));

        File.Delete(path);
        Assert.Equal(FileState.Missing, files.Snapshot()[0]);
    }

    [Fact]
    public void Links_resolve_through_relative_and_absolute_targets_and_a_loop_resolves_to_nothing()
    {
        var root = _certificates.Directory;
        var real = Directory.CreateDirectory(Path.Combine(root, "archive", "v3")).FullName;
        File.WriteAllText(Path.Combine(real, "fullchain3.pem"), "x");
        // certbot's layout: live/NAME/fullchain.pem -> ../../archive/NAME/fullchain3.pem, here through an absolute link too.
        var live = Directory.CreateDirectory(Path.Combine(root, "live", "site")).FullName;
        File.CreateSymbolicLink(Path.Combine(live, "fullchain.pem"), "../../archive/v3/fullchain3.pem");
        Directory.CreateSymbolicLink(Path.Combine(root, "current"), live);

        Assert.Equal(Path.Combine(real, "fullchain3.pem"), WatchedFiles.Resolve(Path.Combine(root, "current", "fullchain.pem")));

        File.CreateSymbolicLink(Path.Combine(root, "loop-a"), "loop-b");
        File.CreateSymbolicLink(Path.Combine(root, "loop-b"), "loop-a");
        Assert.Null(WatchedFiles.Resolve(Path.Combine(root, "loop-a")));
        Assert.Equal(FileState.Missing, WatchedFiles.StateOf(Path.Combine(root, "loop-a")));
    }
}
