using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Gateway.Configuration;

/// <summary>
/// Files the gateway reloads when they change (the configuration file, certificates and keys), and what each is on disk
/// now: the file it resolves to after every
/// symbolic link in its path, that file's size and modification time, and a hash of its contents. Kubernetes swaps a
/// Secret by renaming a <c>..data</c> directory link, which leaves <c>tls.crt</c> itself (a link) unchanged, and .NET's
/// <see cref="FileInfo"/> reports the link's own size and time; so every link is resolved here first. The hash catches
/// a copy that keeps the source's time (<c>cp -p</c>, rsync, .NET's File.Copy) over a file of the same size, which a
/// renewed key of the same type always has.
/// </summary>
internal sealed class WatchedFiles
{
    /// <summary>Linux gives up after 40 links (ELOOP); so does this.</summary>
    private const int MaxLinks = 40;

    /// <summary>Certificates, keys and the configuration are a few KiB; a larger file is compared by size and time only.</summary>
    private const long MaxHashedLength = 1024 * 1024;

    private readonly string[] _paths;

    public WatchedFiles(IEnumerable<string> paths)
    {
        _paths = paths.Select(Path.GetFullPath).Distinct(StringComparer.Ordinal).ToArray();
    }

    public IReadOnlyList<string> Paths => _paths;

    /// <summary>The state of every file, in <see cref="Paths"/> order. Called every few seconds: a few stat calls and one small read per file.</summary>
    public FileState[] Snapshot()
    {
        var states = new FileState[_paths.Length];
        for (var i = 0; i < _paths.Length; i++)
        {
            states[i] = StateOf(_paths[i]);
        }
        return states;
    }

    public static bool Same(FileState[] a, FileState[] b) => a.AsSpan().SequenceEqual(b);

    internal static FileState StateOf(string path)
    {
        try
        {
            if (Resolve(path) is not { } resolved)
            {
                return FileState.Missing;
            }
            var file = new FileInfo(resolved);
            if (!file.Exists)
            {
                return FileState.Missing;
            }
            return new FileState(resolved, file.Length, file.LastWriteTimeUtc.Ticks, file.Length <= MaxHashedLength ? Hash(resolved) : 0);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return FileState.Missing;
        }
    }

    private static UInt128 Hash(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, bufferSize: 0);
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(stream, hash);
        return BinaryPrimitives.ReadUInt128LittleEndian(hash);
    }

    /// <summary>
    /// The path with every symbolic link in it replaced by its target, component by component (realpath(3)), or null
    /// when a link loops. A missing component ends the walk: the rest cannot be a link.
    /// </summary>
    internal static string? Resolve(string path)
    {
        var current = Path.GetFullPath(path);
        for (var links = 0; links <= MaxLinks; links++)
        {
            var root = Path.GetPathRoot(current)!;
            var parts = current[root.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries);
            var resolved = root;
            var followed = false;
            for (var i = 0; i < parts.Length; i++)
            {
                var next = Path.Join(resolved, parts[i]);
                // FileInfo reads the link itself (lstat), for a directory link too.
                if (new FileInfo(next).LinkTarget is not { } target)
                {
                    resolved = next;
                    continue;
                }
                // A relative target is relative to the directory holding the link, which is resolved already.
                var rest = string.Join(Path.DirectorySeparatorChar, parts, i + 1, parts.Length - i - 1);
                current = Path.GetFullPath(Path.Join(Path.GetFullPath(target, resolved), rest));
                followed = true;
                break;
            }
            if (!followed)
            {
                return resolved;
            }
        }
        return null;
    }
}

/// <summary>What one configured file is on disk: the real file behind it, its size, modification time and content hash.</summary>
internal readonly record struct FileState(string? ResolvedPath, long Length, long LastWriteTicks, UInt128 ContentHash)
{
    public static FileState Missing => new(null, -1, 0, 0);
}
