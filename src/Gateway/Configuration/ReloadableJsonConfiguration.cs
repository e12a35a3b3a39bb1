using System.Text.Json;
using Microsoft.Extensions.Configuration.Json;
using Microsoft.Extensions.FileProviders;
using Microsoft.Extensions.Primitives;

namespace Gateway.Configuration;

/// <summary>
/// The configuration file as an <see cref="IConfigurationSource"/> that survives bad edits.
/// Written by hand because the framework's JSON file provider empties its data when a reload fails to parse
/// (or when an editor briefly removes the file), and YARP would then apply "no routes" to a running gateway.
/// Here a reload that fails keeps the last good data and reports why; the first load still throws.
/// </summary>
internal sealed class ReloadableJsonConfigurationSource : IConfigurationSource
{
    public ReloadableJsonConfigurationSource(string path) => FullPath = Path.GetFullPath(path);

    public string FullPath { get; }

    /// <summary>How long to wait after a change notification before reading: editors write in several steps.</summary>
    public TimeSpan ReloadDelay { get; init; } = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// How often the file is also looked at (every link in its path resolved, its contents hashed). A Kubernetes
    /// ConfigMap is updated by renaming a <c>..data</c> link in the file's directory, which a watcher of the file's name
    /// never reports; without this, such an update would wait for <c>DOTNET_USE_POLLING_FILE_WATCHER</c>.
    /// </summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Raised when new data is in place but before the configuration announces the change: the <c>Gateway</c> section's
    /// reloadable parts (policies) apply here, so that routes naming a new policy find it when YARP reads them.
    /// </summary>
    public event Action? Applying;

    /// <summary>
    /// Checks an edit whole before any of it is in place (<c>Reload/EditValidation</c>); throws with the reason. An edit
    /// it refuses raises <see cref="ReloadFailed"/> and nothing of it applies.
    /// </summary>
    internal Action<IDictionary<string, string?>>? Validator { get; set; }

    /// <summary>Raised after a reload applied new data.</summary>
    public event Action? Reloaded;

    /// <summary>Raised when a changed file could not be read; the previous data stays in force.</summary>
    public event Action<Exception>? ReloadFailed;

    public IConfigurationProvider Build(IConfigurationBuilder builder) => _provider = new Provider(this);

    /// <summary>
    /// Reads the file now, as a change notification would, without waiting for <see cref="ReloadDelay"/> (SIGHUP).
    /// A file that cannot be read keeps the last good data and raises <see cref="ReloadFailed"/>.
    /// </summary>
    public void Reload() => _provider?.ReloadNow();

    private Provider? _provider;

    internal bool IsProvider(IConfigurationProvider provider) => ReferenceEquals(provider, _provider);

    internal void OnApplying() => Applying?.Invoke();

    internal void OnReloaded() => Reloaded?.Invoke();

    internal void OnReloadFailed(Exception ex) => ReloadFailed?.Invoke(ex);

    private sealed class Provider : ConfigurationProvider, IDisposable
    {
        private readonly ReloadableJsonConfigurationSource _source;
        private readonly PhysicalFileProvider _files;
        private readonly IDisposable _watch;
        private readonly WatchedFiles _watched;
        private readonly Timer _poll;
        private FileState[] _seen;
        private int _reloading;

        public Provider(ReloadableJsonConfigurationSource source)
        {
            _source = source;
            _files = new PhysicalFileProvider(Path.GetDirectoryName(source.FullPath)!);
            var name = Path.GetFileName(source.FullPath);
            _watch = ChangeToken.OnChange(() => _files.Watch(name), OnFileChanged);
            _watched = new WatchedFiles([source.FullPath]);
            _seen = _watched.Snapshot();
            _poll = new Timer(static state => ((Provider)state!).Poll(), this, source.PollInterval, source.PollInterval);
        }

        /// <summary>What the name watcher misses (a link swapped above the file) shows as a different resolved file or content.</summary>
        private void Poll()
        {
            var now = _watched.Snapshot();
            if (!WatchedFiles.Same(now, Volatile.Read(ref _seen)))
            {
                Volatile.Write(ref _seen, now);
                OnFileChanged();
            }
        }

        public override void Load() => Data = Parse(_source.FullPath);

        private void OnFileChanged()
        {
            // Coalesce the burst of notifications one save produces into one reload.
            if (Interlocked.Exchange(ref _reloading, 1) == 1)
            {
                return;
            }
            _ = Task.Run(async () =>
            {
                await Task.Delay(_source.ReloadDelay).ConfigureAwait(false);
                Volatile.Write(ref _reloading, 0);
                ReloadNow();
            });
        }

        public void ReloadNow()
        {
            // What is read now is what the poll compares with next: one change, one reload.
            Volatile.Write(ref _seen, _watched.Snapshot());
            try
            {
                IDictionary<string, string?> data;
                try
                {
                    data = Parse(_source.FullPath);
                    _source.Validator?.Invoke(data);
                }
                catch (Exception ex)
                {
                    _source.OnReloadFailed(ex);
                    return;
                }
                Data = data;
                _source.OnApplying();
                OnReload();
                _source.OnReloaded();
            }
            catch (Exception ex)
            {
                _source.OnReloadFailed(ex);
            }
        }

        public void Dispose()
        {
            _poll.Dispose();
            _watch.Dispose();
            _files.Dispose();
        }

        private static IDictionary<string, string?> Parse(string path)
        {
            using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            var parser = new StreamParser(new JsonStreamConfigurationSource { Stream = stream });
            try
            {
                parser.Load(stream);
            }
            catch (JsonException ex)
            {
                throw new InvalidDataException($"invalid JSON: {ex.Message}", ex);
            }
            catch (FormatException ex)
            {
                // Duplicate keys and similar are reported by the framework as FormatException.
                throw new InvalidDataException(ex.InnerException is JsonException json ? $"invalid JSON: {json.Message}" : ex.Message, ex);
            }
            var values = parser.Values;
            Durations.Normalize(values);
            return values;
        }

        /// <summary>Reuses the framework's JSON-to-keys flattening (the same key names as AddJsonFile).</summary>
        private sealed class StreamParser(JsonStreamConfigurationSource source) : JsonStreamConfigurationProvider(source)
        {
            public IDictionary<string, string?> Values => Data;
        }
    }
}
