using Gateway.Configuration;

namespace Gateway.Tls;

/// <summary>
/// Notices renewed certificate files and has them reloaded: file-system notifications on the directories that hold the
/// configured files (where a Kubernetes <c>..data</c> swap or an ACME client's rename happens), a check of every file's
/// resolved target, size and time every <see cref="TlsOptions.CertificateCheckInterval"/> for what notifications miss
/// (links into other directories, network file systems, a full inotify queue), and SIGHUP for an immediate reload.
/// A change is read once the files have been quiet for <see cref="SettleDelay"/>: a renewal writes several of them.
/// </summary>
internal sealed class CertificateWatcher : IHostedService, IDisposable
{
    /// <summary>How long the files must be quiet before they are read.</summary>
    public static readonly TimeSpan SettleDelay = TimeSpan.FromSeconds(1);

    /// <summary>A directory that never goes quiet still gets its change read this long after the first notification.</summary>
    private static readonly TimeSpan MaxSettleDelay = TimeSpan.FromSeconds(5);

    private readonly Lock _gate = new();
    private readonly CertificateReloader _reloader;
    private readonly WatchedFiles _files;
    private readonly TimeSpan _checkInterval;
    private readonly ReloadSignal _signal;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly List<FileSystemWatcher> _watchers = new();
    private ITimer? _settle;
    private ITimer? _check;
    private long? _settlingSince;

    public CertificateWatcher(CertificateReloader reloader, WatchedFiles files, TimeSpan checkInterval, ReloadSignal signal,
        TimeProvider time, ILogger logger)
    {
        _reloader = reloader;
        _files = files;
        _checkInterval = checkInterval;
        _signal = signal;
        _time = time;
        _logger = logger;
    }

    public Task StartAsync(CancellationToken cancellationToken)
    {
        _settle = _time.CreateTimer(_ => OnSettled(), null, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        if (_checkInterval > TimeSpan.Zero)
        {
            _check = _time.CreateTimer(_ => OnCheck(), null, _checkInterval, _checkInterval);
        }
        foreach (var directory in _files.Paths.GroupBy(Path.GetDirectoryName))
        {
            Watch(directory.Key!, directory.Select(Path.GetFileName).ToHashSet(StringComparer.Ordinal)!);
        }
        _signal.Received += OnSignal;
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        Dispose();
        return Task.CompletedTask;
    }

    public void Dispose()
    {
        _signal.Received -= OnSignal;
        lock (_gate)
        {
            foreach (var watcher in _watchers)
            {
                watcher.Dispose();
            }
            _watchers.Clear();
        }
        _check?.Dispose();
        _settle?.Dispose();
    }

    private void Watch(string directory, HashSet<string> names)
    {
        try
        {
            var watcher = new FileSystemWatcher(directory)
            {
                IncludeSubdirectories = false,
                NotifyFilter = NotifyFilters.FileName | NotifyFilters.DirectoryName | NotifyFilters.LastWrite | NotifyFilters.Size,
            };
            // The configured names themselves, and Kubernetes' "..data" link and "..2026_..." directories.
            FileSystemEventHandler changed = (_, e) =>
            {
                if (Relevant(e.Name, names))
                {
                    Settle();
                }
            };
            watcher.Changed += changed;
            watcher.Created += changed;
            watcher.Deleted += changed;
            watcher.Renamed += (_, e) =>
            {
                if (Relevant(e.Name, names) || Relevant(e.OldName, names))
                {
                    Settle();
                }
            };
            // Events were lost (the queue overflowed): look at the files.
            watcher.Error += (_, _) => Settle();
            watcher.EnableRaisingEvents = true;
            lock (_gate)
            {
                _watchers.Add(watcher);
            }
        }
        catch (Exception ex) when (ex is ArgumentException or IOException or PlatformNotSupportedException or UnauthorizedAccessException)
        {
            // A missing directory, or no inotify instances left: the periodic check still sees changes.
            Log.CannotWatchCertificates(_logger, directory, ex.Message, _checkInterval);
        }
    }

    private static bool Relevant(string? name, HashSet<string> names) =>
        name is not null && (names.Contains(name) || name.StartsWith("..", StringComparison.Ordinal));

    /// <summary>(Re)starts the quiet period, unless the first notification of this burst is already too long ago.</summary>
    private void Settle()
    {
        lock (_gate)
        {
            var now = _time.GetTimestamp();
            if (_settlingSince is not { } since)
            {
                _settlingSince = now;
            }
            else if (_time.GetElapsedTime(since, now) + SettleDelay > MaxSettleDelay)
            {
                return;
            }
            _settle?.Change(SettleDelay, Timeout.InfiniteTimeSpan);
        }
    }

    private void OnCheck()
    {
        try
        {
            if (_reloader.FilesChanged())
            {
                Settle();
            }
        }
        catch (Exception ex)
        {
            Log.CertificateWatchFailed(_logger, ex);
        }
    }

    private void OnSettled()
    {
        lock (_gate)
        {
            _settlingSince = null;
        }
        try
        {
            _reloader.ReloadIfChanged("after a file change");
        }
        catch (Exception ex)
        {
            Log.CertificateWatchFailed(_logger, ex);
        }
    }

    private void OnSignal()
    {
        try
        {
            _reloader.Reload("on SIGHUP");
        }
        catch (Exception ex)
        {
            Log.CertificateWatchFailed(_logger, ex);
        }
    }
}
