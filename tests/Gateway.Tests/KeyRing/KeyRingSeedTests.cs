using System.Text.Json.Nodes;
using Gateway.KeyRing;
using Gateway.Tests.Handshake;
using Gateway.Tests.Infrastructure;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.DataProtection.KeyManagement;
using Microsoft.AspNetCore.DataProtection.KeyManagement.Internal;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Gateway.Tests.KeyRing;

/// <summary>
/// The shared key ring's first key: made once, under the directory's lock, by whichever replica comes first, and used
/// by all. Each "replica" here is Data Protection as the gateway configures it, on one directory.
/// </summary>
public sealed class KeyRingSeedTests : IDisposable
{
    private static readonly TimeSpan Within = TimeSpan.FromSeconds(20);

    private readonly string _directory = Directory.CreateTempSubdirectory("gateway-keyring-").FullName;
    private readonly List<ServiceProvider> _replicas = new();

    public void Dispose()
    {
        foreach (var replica in _replicas)
        {
            replica.Dispose();
        }
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task Replicas_starting_together_on_an_empty_ring_create_one_key_and_all_use_it()
    {
        await WarmUpAsync();
        // Without the lock a round ends with one key (the first replica is done before the others look) or with a key
        // per replica, by chance: over twenty rounds the race showed in most runs here.
        for (var round = 0; round < 20; round++)
        {
            var directory = Directory.CreateDirectory(Path.Combine(_directory, $"round-{round}")).FullName;
            var replicas = Enumerable.Range(0, 4).Select(_ => Replica(directory: directory)).ToList();
            await StartTogetherAsync(replicas.Select(Seed).ToList());

            var key = Assert.Single(KeyFiles(directory));
            // Each loads its ring as Data Protection's hosted service then does, and protects with that one key.
            Assert.All(replicas, r => Assert.Equal(key, $"key-{Ring(r).DefaultKeyId}.xml"));
        }
    }

    [Fact]
    public async Task A_replica_that_waits_for_the_lock_uses_the_key_its_holder_created()
    {
        var logs = new CapturingLoggerProvider();
        var holder = Replica();
        var waiter = Replica(logs);
        Guid created;
        Task seeding;
        var (held, error) = await KeyRingLock.AcquireAsync(_directory, TimeSpan.Zero, () => { }, CancellationToken.None);
        using (held)
        {
            Assert.True(held is not null, error);
            seeding = Seed(waiter).StartingAsync(CancellationToken.None);
            await Retry.Eventually(() => Assert.Contains(logs.Lines, l => l.Id.Id == 1012), Within);
            // The holder finds the ring empty and creates the first key while the other waits.
            var now = DateTimeOffset.UtcNow;
            created = holder.GetRequiredService<IKeyManager>().CreateNewKey(now, now.AddDays(90)).KeyId;
        }
        await seeding.WaitAsync(Within);

        Assert.Equal([$"key-{created}.xml"], KeyFiles());
        Assert.Equal(created, Ring(waiter).DefaultKeyId);
        Assert.Contains(logs.Lines, l => l.Id.Id == 1011 && l.Message.Contains(created.ToString(), StringComparison.Ordinal));
        Assert.DoesNotContain(logs.Lines, l => l.Id.Id == 1010);
    }

    [Fact]
    public async Task A_lock_that_stays_held_is_given_up_with_a_warning_and_the_ring_still_gets_its_key()
    {
        var logs = new CapturingLoggerProvider();
        var replica = Replica(logs);
        var seed = Seed(replica);
        seed.LockWait = TimeSpan.FromMilliseconds(300);
        var (held, _) = await KeyRingLock.AcquireAsync(_directory, TimeSpan.Zero, () => { }, CancellationToken.None);
        using (held)
        {
            await seed.StartingAsync(CancellationToken.None).WaitAsync(Within);
        }

        var warning = Assert.Single(logs.Records, r => r.Id.Id == 1013);
        Assert.Equal(LogLevel.Warning, warning.Level);
        Assert.Contains("start one replica first", warning.Message, StringComparison.Ordinal);
        var key = Assert.Single(KeyFiles());
        Assert.Equal(key, $"key-{Ring(replica).DefaultKeyId}.xml");
    }

    [Fact]
    public async Task A_ring_whose_keys_have_expired_gets_one_new_key_which_the_next_replica_keeps()
    {
        var first = Replica();
        var now = DateTimeOffset.UtcNow;
        var expired = first.GetRequiredService<IKeyManager>().CreateNewKey(now.AddDays(-100), now.AddDays(-10)).KeyId;

        await Seed(first).StartingAsync(CancellationToken.None);
        var next = Replica();
        await Seed(next).StartingAsync(CancellationToken.None);

        var keys = KeyFiles();
        Assert.Equal(2, keys.Length);
        var fresh = Ring(first).DefaultKeyId;
        Assert.NotEqual(expired, fresh);
        Assert.Equal(fresh, Ring(next).DefaultKeyId);
    }

    [Fact]
    public async Task The_gateway_creates_the_first_key_before_Data_Protection_loads_the_ring()
    {
        var logs = new CapturingLoggerProvider();
        var config = GatewayServer.Config(GatewayServer.Proxy([], []));
        ((JsonObject)config["Logging"]!["LogLevel"]!)["Gateway.KeyRing"] = "Debug";
        config["Gateway"]!["DataProtection"] = new JsonObject { ["KeyDirectory"] = _directory };
        await using var gateway = await GatewayServer.StartAsync(config, services => services.AddSingleton<ILoggerProvider>(logs));

        // Had Data Protection read the empty ring first, it would have made the key and the seed found it (1011).
        var line = Assert.Single(logs.Lines, l => l.Category.StartsWith("Gateway.KeyRing", StringComparison.Ordinal));
        Assert.Equal(1010, line.Id.Id);
        var key = Assert.Single(KeyFiles());
        Assert.Equal(key, $"key-{gateway.Services.GetRequiredService<IKeyRingProvider>().GetCurrentKeyRing().DefaultKeyId}.xml");
    }

    /// <summary>Runs the seeds on threads of their own that leave a barrier together (the thread pool would start them one by one).</summary>
    private static async Task StartTogetherAsync(IReadOnlyList<KeyRingSeed> seeds)
    {
        using var barrier = new Barrier(seeds.Count);
        var starts = seeds.Select(seed =>
        {
            var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            new Thread(() =>
            {
                try
                {
                    barrier.SignalAndWait(Within);
                    seed.StartingAsync(CancellationToken.None).GetAwaiter().GetResult();
                    done.SetResult();
                }
                catch (Exception ex)
                {
                    done.SetException(ex);
                }
            }) { IsBackground = true }.Start();
            return done.Task;
        }).ToList();
        await Task.WhenAll(starts).WaitAsync(Within);
    }

    /// <summary>One seed on a directory of its own first, so that the racing ones run compiled code side by side.</summary>
    private static async Task WarmUpAsync()
    {
        var directory = Directory.CreateTempSubdirectory("gateway-keyring-warm-").FullName;
        try
        {
            var services = new ServiceCollection();
            services.AddLogging();
            services.AddDataProtection().SetApplicationName("replicas").PersistKeysToFileSystem(new DirectoryInfo(directory));
            services.AddKeyRingSeed(directory);
            await using var provider = services.BuildServiceProvider();
            await Seed(provider).StartingAsync(CancellationToken.None);
            Ring(provider);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    /// <summary>Data Protection on the shared directory, with the seed, as <c>AddGatewayProxy</c> registers them.</summary>
    private ServiceProvider Replica(CapturingLoggerProvider? logs = null, string? directory = null)
    {
        directory ??= _directory;
        var services = new ServiceCollection();
        services.AddLogging(logging =>
        {
            logging.SetMinimumLevel(LogLevel.Debug);
            if (logs is not null)
            {
                logging.AddProvider(logs);
            }
        });
        services.AddDataProtection().SetApplicationName("replicas").PersistKeysToFileSystem(new DirectoryInfo(directory));
        services.AddKeyRingSeed(directory);
        var provider = services.BuildServiceProvider();
        _replicas.Add(provider);
        return provider;
    }

    private static KeyRingSeed Seed(IServiceProvider replica) => replica.GetServices<IHostedService>().OfType<KeyRingSeed>().Single();

    private static IKeyRing Ring(IServiceProvider replica) => replica.GetRequiredService<IKeyRingProvider>().GetCurrentKeyRing();

    private string[] KeyFiles(string? directory = null) => Directory.GetFiles(directory ?? _directory, "key-*.xml").Select(Path.GetFileName).Order().ToArray()!;
}
