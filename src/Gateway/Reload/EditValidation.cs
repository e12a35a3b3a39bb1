using Gateway.Configuration;
using Gateway.Policies;
using Gateway.Proxy;
using Microsoft.Extensions.Primitives;
using Yarp.ReverseProxy.Configuration;

namespace Gateway.Reload;

/// <summary>
/// Checks an edit of the configuration file whole, both sections, before any of it applies: the <c>Gateway</c>
/// section as at startup, the <c>ReverseProxy</c> section's keys, and its routes and clusters through YARP's own
/// reading, the gateway's filters (with the edit's policies) and YARP's validator. Without this, YARP read its section
/// live and applied it while the same edit's <c>Gateway</c> part was refused: half an edit in force.
/// </summary>
internal sealed class EditValidation
{
    private readonly ReloadableJsonConfigurationSource _source;
    private readonly IConfiguration _configuration;
    private readonly IConfigValidator _validator;
    private readonly IProxyConfigFilter[] _filters;

    public EditValidation(ReloadableJsonConfigurationSource source, IConfiguration configuration, IConfigValidator validator,
        IEnumerable<IProxyConfigFilter> filters)
    {
        _source = source;
        _configuration = configuration;
        _validator = validator;
        _filters = filters.ToArray();
    }

    /// <summary>Throws, with the reason as its message (key first), when the edit cannot apply whole.</summary>
    public void Validate(IDictionary<string, string?> fileData)
    {
        using var candidate = Candidate(fileData);
        ReverseProxyKeys.Check(candidate.GetSection(GatewayOptions.ReverseProxySectionName));
        var options = GatewayConfiguration.Load(candidate, Path.GetDirectoryName(_source.FullPath)!);
        ValidateProxy(candidate.GetSection(GatewayOptions.ReverseProxySectionName), new WebSocketPolicies(options));
    }

    /// <summary>The configuration as it would read with the edit: every other source as it is now, the file replaced.</summary>
    private ConfigurationRoot Candidate(IDictionary<string, string?> fileData)
    {
        var file = new FixedProvider(fileData);
        if (_configuration is not IConfigurationRoot root)
        {
            return new ConfigurationRoot([file]);
        }
        return new ConfigurationRoot(root.Providers
            .Select(provider => _source.IsProvider(provider) ? file : (IConfigurationProvider)new FrozenProvider(provider))
            .ToList());
    }

    private void ValidateProxy(IConfigurationSection section, WebSocketPolicies policies)
    {
        // YARP's own provider turns the section into routes and clusters, as the running one will.
        var services = new ServiceCollection().AddLogging();
        new ProxyBuilder(services).LoadFromConfig(section);
        using var provider = services.BuildServiceProvider();
        IProxyConfig config;
        try
        {
            config = provider.GetRequiredService<IProxyConfigProvider>().GetConfig();
        }
        catch (Exception ex)
        {
            throw new InvalidDataException($"{GatewayOptions.ReverseProxySectionName}: {ex.Message.TrimEnd('.')}", ex);
        }

        // Then what ProxyConfigManager does on apply: the filters, the gateway's with the edit's policies, and the validator.
        var filters = _filters.Select(filter => filter is ProxyConfigDefaults ? new ProxyConfigDefaults(policies) : filter).ToArray();
        var errors = new List<Exception>();
        var clusters = new Dictionary<string, ClusterConfig>(StringComparer.OrdinalIgnoreCase);
        foreach (var original in config.Clusters)
        {
            try
            {
                var cluster = original;
                foreach (var filter in filters)
                {
                    cluster = Wait(filter.ConfigureClusterAsync(cluster, CancellationToken.None));
                }
                var found = Wait(_validator.ValidateClusterAsync(cluster));
                errors.AddRange(found);
                if (found.Count == 0)
                {
                    clusters[cluster.ClusterId] = cluster;
                }
            }
            catch (Exception ex)
            {
                errors.Add(ex);
            }
        }
        foreach (var original in config.Routes)
        {
            try
            {
                var route = original;
                var cluster = route.ClusterId is { } id ? clusters.GetValueOrDefault(id) : null;
                foreach (var filter in filters)
                {
                    route = Wait(filter.ConfigureRouteAsync(route, cluster, CancellationToken.None));
                }
                errors.AddRange(Wait(_validator.ValidateRouteAsync(route)));
            }
            catch (Exception ex)
            {
                errors.Add(ex);
            }
        }
        if (errors.Count > 0)
        {
            throw new InvalidDataException(ProxyConfigErrors.Describe(new AggregateException(errors)), new AggregateException(errors));
        }
    }

    /// <summary>A reload runs on a timer or signal thread, not a request; the filters and YARP's validators complete synchronously.</summary>
    private static T Wait<T>(ValueTask<T> task) => task.IsCompletedSuccessfully ? task.Result : task.AsTask().GetAwaiter().GetResult();

    private sealed class ProxyBuilder(IServiceCollection services) : IReverseProxyBuilder
    {
        public IServiceCollection Services { get; } = services;
    }

    /// <summary>The edited file's keys.</summary>
    private sealed class FixedProvider : ConfigurationProvider
    {
        public FixedProvider(IDictionary<string, string?> data) => Data = new Dictionary<string, string?>(data, StringComparer.OrdinalIgnoreCase);
    }

    /// <summary>Another source as it reads now: never loaded again, never disposed by the candidate.</summary>
    private sealed class FrozenProvider(IConfigurationProvider inner) : IConfigurationProvider
    {
        public bool TryGet(string key, out string? value) => inner.TryGet(key, out value);

        public void Set(string key, string? value)
        {
        }

        public IChangeToken GetReloadToken() => NeverChanges.Instance;

        public void Load()
        {
        }

        public IEnumerable<string> GetChildKeys(IEnumerable<string> earlierKeys, string? parentPath) => inner.GetChildKeys(earlierKeys, parentPath);
    }

    private sealed class NeverChanges : IChangeToken
    {
        public static readonly NeverChanges Instance = new();

        public bool HasChanged => false;

        public bool ActiveChangeCallbacks => false;

        public IDisposable RegisterChangeCallback(Action<object?> callback, object? state) => EmptyDisposable.Instance;
    }

    private sealed class EmptyDisposable : IDisposable
    {
        public static readonly EmptyDisposable Instance = new();

        public void Dispose()
        {
        }
    }
}
