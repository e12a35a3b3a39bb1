using System.Runtime.InteropServices;

namespace Gateway.Tests.Tls;

/// <summary>
/// A directory laid out as the kubelet lays out a Secret volume, and updated as it updates one (its AtomicWriter):
/// the files live in <c>..TIMESTAMP/</c>, <c>..data</c> links to that directory, and <c>tls.crt</c> links to
/// <c>..data/tls.crt</c>. An update writes a new timestamped directory, points a new <c>..data_tmp</c> link at it,
/// renames that link over <c>..data</c> (one atomic rename(2)) and removes the old directory.
/// </summary>
internal sealed class SecretMount
{
    private int _version;
    private string? _current;

    public SecretMount(string parent)
    {
        Directory = Path.Combine(parent, "secret");
        System.IO.Directory.CreateDirectory(Directory);
    }

    public string Directory { get; }

    public string CertificatePath => Path.Combine(Directory, "tls.crt");

    public string KeyPath => Path.Combine(Directory, "tls.key");

    /// <summary>Publishes a new version of the secret with the contents of these PEM files.</summary>
    public void Publish(string certificatePemFile, string keyPemFile)
    {
        var version = $"..2026_12_01_00_00_{++_version:D2}.{Environment.TickCount64}";
        var versionDirectory = Path.Combine(Directory, version);
        System.IO.Directory.CreateDirectory(versionDirectory);
        File.Copy(certificatePemFile, Path.Combine(versionDirectory, "tls.crt"));
        File.Copy(keyPemFile, Path.Combine(versionDirectory, "tls.key"));

        var data = Path.Combine(Directory, "..data");
        var temporary = Path.Combine(Directory, "..data_tmp");
        System.IO.Directory.CreateSymbolicLink(temporary, version);
        if (Rename(temporary, data) != 0)
        {
            throw new IOException($"rename {temporary} -> {data} failed: errno {Marshal.GetLastPInvokeError()}");
        }
        if (_current is null)
        {
            File.CreateSymbolicLink(CertificatePath, "..data/tls.crt");
            File.CreateSymbolicLink(KeyPath, "..data/tls.key");
        }
        else
        {
            System.IO.Directory.Delete(Path.Combine(Directory, _current), recursive: true);
        }
        _current = version;
    }

    /// <summary>Publishes a new version holding one text file, as a ConfigMap mount does; returns the path through the links.</summary>
    public string PublishText(string name, string text)
    {
        var version = $"..2026_12_01_00_00_{++_version:D2}.{Environment.TickCount64}";
        var versionDirectory = Path.Combine(Directory, version);
        System.IO.Directory.CreateDirectory(versionDirectory);
        File.WriteAllText(Path.Combine(versionDirectory, name), text);
        var data = Path.Combine(Directory, "..data");
        var temporary = Path.Combine(Directory, "..data_tmp");
        System.IO.Directory.CreateSymbolicLink(temporary, version);
        if (Rename(temporary, data) != 0)
        {
            throw new IOException($"rename {temporary} -> {data} failed: errno {Marshal.GetLastPInvokeError()}");
        }
        var path = Path.Combine(Directory, name);
        if (_current is null)
        {
            File.CreateSymbolicLink(path, $"..data/{name}");
        }
        else
        {
            System.IO.Directory.Delete(Path.Combine(Directory, _current), recursive: true);
        }
        _current = version;
        return path;
    }

    /// <summary>rename(2): replaces the <c>..data</c> link in one step (File.Move would refuse a directory link).</summary>
    [DllImport("libc", EntryPoint = "rename", SetLastError = true)]
    private static extern int Rename(string from, string to);
}
