using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.AspNetCore.DataProtection.KeyManagement.Internal;
using Microsoft.Extensions.Options;

namespace Gateway.KeyRing;

/// <summary>
/// Gives a shared key ring (<c>Gateway:DataProtection:KeyDirectory</c>) a usable key before Data Protection first
/// reads it, creating the first one under <see cref="KeyRingLock"/>.
/// <para>
/// Why: Data Protection creates an immediately active key whenever the ring it reads has none usable, and its file
/// repository takes no lock. Replicas that start together on an empty directory (a new deployment, a fresh volume)
/// each find no key and each create one, then each encrypts affinity cookies with its own. A replica looks for a key
/// it does not know again only during its first 2 minutes, and otherwise rereads the ring about once a day, so for up
/// to a day a client that a balancer sends to another replica loses its backend (its cookie cannot be read, and the
/// client is redistributed). With the first key made under the lock, the replicas after the first find it and use it.
/// </para>
/// Runs in <see cref="StartingAsync"/>, before any hosted service starts: Data Protection's own loads the ring in its
/// <c>StartAsync</c>. Later keys are Data Protection's business: it creates each replacement days before it is used,
/// so every replica has read it by then.
/// </summary>
internal sealed class KeyRingSeed(IKeyManager keys, IDefaultKeyResolver resolver, IOptions<KeyManagementOptions> options,
    SharedKeyDirectory directory, ILogger<KeyRingSeed> logger) : IHostedLifecycleService
{
    /// <summary>How long to wait for another replica's lock: it holds it for a directory listing and one key file.</summary>
    internal TimeSpan LockWait { get; set; } = TimeSpan.FromSeconds(10);

    public async Task StartingAsync(CancellationToken cancellationToken)
    {
        var path = directory.Path;
        var (held, error) = await KeyRingLock.AcquireAsync(path, LockWait,
            () => Log.LockContended(logger, path, KeyRingLock.FileName, LockWait), cancellationToken);
        using (held)
        {
            if (held is null)
            {
                Log.LockUnavailable(logger, path, error!);
            }
            // The wall clock, as Data Protection's own key ring provider reads it: key dates are compared across processes.
            var now = DateTimeOffset.UtcNow;
            var all = keys.GetAllKeys();
            if (resolver.ResolveDefaultKeyPolicy(now, all).DefaultKey is { } current)
            {
                Log.KeyFound(logger, path, current.KeyId, all.Count);
                return;
            }
            // What Data Protection itself would create here: active now, for the configured lifetime (90 days).
            var created = keys.CreateNewKey(activationDate: now, expirationDate: now + options.Value.NewKeyLifetime);
            Log.KeyCreated(logger, path, created.KeyId, created.ExpirationDate);
        }
    }

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary>The key directory replicas share (<c>Gateway:DataProtection:KeyDirectory</c>).</summary>
internal sealed record SharedKeyDirectory(string Path);
