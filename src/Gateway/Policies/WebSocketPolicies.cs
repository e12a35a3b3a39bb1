using Gateway.Configuration;
using Yarp.ReverseProxy.Model;

namespace Gateway.Policies;

/// <summary>A policy as the running gateway uses it: validated, named, immutable.</summary>
internal sealed class WebSocketPolicy
{
    public WebSocketPolicy(string name, WebSocketPolicyOptions options)
    {
        Name = name;
        Options = options;
    }

    public string Name { get; }

    public WebSocketPolicyOptions Options { get; }

    public bool KeepAliveEnabled => Options.KeepAlive.Interval > TimeSpan.Zero;
}

/// <summary>
/// Finds the policy of the route a request matched. The set reloads with the configuration file
/// (<see cref="Reload"/>): new handshakes get the new policies, open tunnels keep the one they started with (but for
/// their keepalive timing, which they read again when <see cref="Version"/> changes).
/// </summary>
internal sealed class WebSocketPolicies
{
    /// <summary>The route metadata key that names a policy.</summary>
    public const string MetadataKey = "WebSocketPolicy";
    public const string DefaultName = "default";

    /// <summary>
    /// The built-in defaults under a name of their own, whatever the file's <c>default</c> says: the policy of the
    /// gateway's startup warm-up route, whose handshakes carry no Origin and come from loopback.
    /// </summary>
    public const string BuiltInName = "built-in";

    private volatile PolicySet _set;

    public WebSocketPolicies(GatewayOptions options) => _set = new PolicySet(options.WebSocketPolicies, version: 0);

    /// <summary>Raised after <see cref="Reload"/> replaced the set.</summary>
    public event Action? Changed;

    /// <summary>Counts the reloads that changed the set.</summary>
    public int Version => _set.Version;

    public WebSocketPolicy Default => _set.Default;

    public IEnumerable<WebSocketPolicy> All => _set.All;

    public bool Contains(string name) => _set.Contains(name);

    /// <summary>The current policy of this name, or null when a reload removed it.</summary>
    public WebSocketPolicy? ByName(string name) => _set.ByName(name);

    public WebSocketPolicy ForRoute(RouteModel? route) => _set.ForRoute(route);

    /// <summary>Takes the policies of a reloaded (and validated) file.</summary>
    internal void Reload(Dictionary<string, WebSocketPolicyOptions> policies)
    {
        _set = new PolicySet(policies, _set.Version + 1);
        Changed?.Invoke();
    }

    private sealed class PolicySet
    {
        private readonly Dictionary<string, WebSocketPolicy> _policies = new(StringComparer.OrdinalIgnoreCase);

        public PolicySet(Dictionary<string, WebSocketPolicyOptions> options, int version)
        {
            Version = version;
            foreach (var (name, policy) in options)
            {
                _policies[name] = new WebSocketPolicy(name, policy);
            }
            Default = _policies.GetValueOrDefault(DefaultName) ?? new WebSocketPolicy(DefaultName, new WebSocketPolicyOptions());
            _policies.TryAdd(BuiltInName, new WebSocketPolicy(BuiltInName, new WebSocketPolicyOptions()));
        }

        public int Version { get; }

        public WebSocketPolicy Default { get; }

        public IEnumerable<WebSocketPolicy> All => _policies.Values.Append(Default).Distinct();

        public bool Contains(string name) => _policies.ContainsKey(name) || string.Equals(name, DefaultName, StringComparison.OrdinalIgnoreCase);

        public WebSocketPolicy? ByName(string name) =>
            _policies.GetValueOrDefault(name) ?? (string.Equals(name, DefaultName, StringComparison.OrdinalIgnoreCase) ? Default : null);

        public WebSocketPolicy ForRoute(RouteModel? route)
        {
            if (route?.Config.Metadata is { } metadata && metadata.TryGetValue(MetadataKey, out var name)
                && _policies.TryGetValue(name, out var policy))
            {
                return policy;
            }
            return Default;
        }
    }

    /// <summary>Checks one policy's values; the key names the policy so the error points into the file.</summary>
    internal static void Validate(string name, WebSocketPolicyOptions policy)
    {
        var key = $"{GatewayOptions.SectionName}:WebSocketPolicies:{name}";
        ValidateHandshake($"{key}:Handshake", policy.Handshake);
        ValidateLimits($"{key}:Limits", policy.Limits);
        var keepAlive = policy.KeepAlive;
        if (keepAlive.Interval < TimeSpan.Zero)
        {
            throw new GatewayConfigurationException($"{key}:KeepAlive:Interval", "must not be negative (00:00:00 turns keepalive off)");
        }
        if (keepAlive.Interval > TimeSpan.Zero && keepAlive.Timeout <= TimeSpan.Zero)
        {
            throw new GatewayConfigurationException($"{key}:KeepAlive:Timeout", "must be positive when keepalive is on");
        }
        if (policy.Frames.MaxMessageBytes < 0)
        {
            throw new GatewayConfigurationException($"{key}:Frames:MaxMessageBytes", "must not be negative (0 means no limit)");
        }
        if (policy.Frames.MaxFrameBytes < 0)
        {
            throw new GatewayConfigurationException($"{key}:Frames:MaxFrameBytes", "must not be negative (0 means no limit)");
        }
        ValidateRateLimits($"{key}:RateLimits", policy.RateLimits);
    }

    private static void ValidateRateLimits(string key, RateLimitOptions limits)
    {
        ValidateScope($"{key}:PerConnection", limits.PerConnection);
        ValidateScope($"{key}:PerClient", limits.PerClient);
        ValidateScope($"{key}:PerUser", limits.PerUser);
        ValidateScope($"{key}:PerRoute", limits.PerRoute);
        ValidateScope($"{key}:BackendPerConnection", limits.BackendPerConnection);
        if (!Enum.IsDefined(limits.Action))
        {
            throw new GatewayConfigurationException($"{key}:Action", $"must be one of {string.Join(", ", Enum.GetNames<RateLimitAction>())}");
        }
    }

    private static void ValidateScope(string key, RateLimitScopeOptions scope)
    {
        ValidateRate($"{key}:Messages", scope.Messages);
        ValidateRate($"{key}:Bytes", scope.Bytes);
    }

    private static void ValidateRate(string key, RateOptions rate)
    {
        if (!double.IsFinite(rate.PerSecond) || rate.PerSecond < 0)
        {
            throw new GatewayConfigurationException($"{key}:PerSecond", $"must be a number of 0 or more (0 means no limit), not {rate.PerSecond}");
        }
        if (!double.IsFinite(rate.Burst) || rate.Burst < 0)
        {
            throw new GatewayConfigurationException($"{key}:Burst", $"must be a number of 0 or more (0 means as many as PerSecond), not {rate.Burst}");
        }
        if (rate.Burst > 0 && rate.Burst < 1)
        {
            // A bucket that can never hold one whole message (or byte) would refuse everything.
            throw new GatewayConfigurationException($"{key}:Burst", $"must be at least 1 (or 0 for as many as PerSecond), not {rate.Burst}");
        }
        if (rate.Burst > 0 && rate.PerSecond == 0)
        {
            throw new GatewayConfigurationException($"{key}:PerSecond", "must be set when Burst is (a burst without a rate would never refill)");
        }
    }

    private static void ValidateHandshake(string key, HandshakeOptions handshake)
    {
        for (var i = 0; i < handshake.AllowedOrigins.Count; i++)
        {
            if (!OriginAllowList.TryParseEntry(handshake.AllowedOrigins[i] ?? string.Empty, out _, out var error))
            {
                throw new GatewayConfigurationException($"{key}:AllowedOrigins:{i}", error!);
            }
        }
        for (var i = 0; i < handshake.Subprotocols.Count; i++)
        {
            if (!Http.HttpSyntax.IsToken(handshake.Subprotocols[i]?.Trim()))
            {
                throw new GatewayConfigurationException($"{key}:Subprotocols:{i}",
                    $"'{handshake.Subprotocols[i]}' is not a subprotocol name (an HTTP token: letters, digits and !#$%&'*+-.^_`|~)");
            }
        }
    }

    private static void ValidateLimits(string key, ConnectionLimitOptions limits)
    {
        if (limits.MaxConnections < 0)
        {
            throw new GatewayConfigurationException($"{key}:MaxConnections", "must not be negative (0 means no limit)");
        }
        if (limits.MaxConnectionsPerClient < 0)
        {
            throw new GatewayConfigurationException($"{key}:MaxConnectionsPerClient", "must not be negative (0 means no limit)");
        }
        if (limits.MaxConnectionsPerUser < 0)
        {
            throw new GatewayConfigurationException($"{key}:MaxConnectionsPerUser", "must not be negative (0 means no limit)");
        }
        if (limits.MaxLifetime < TimeSpan.Zero)
        {
            throw new GatewayConfigurationException($"{key}:MaxLifetime", "must not be negative (00:00:00 means no limit)");
        }
        if (limits.HandshakesPerMinutePerClient < 0)
        {
            throw new GatewayConfigurationException($"{key}:HandshakesPerMinutePerClient", "must not be negative (0 means no limit)");
        }
        if (limits.IPv6PrefixLength is < 1 or > 128)
        {
            throw new GatewayConfigurationException($"{key}:IPv6PrefixLength",
                $"must be between 1 and 128 (IPv6 clients are counted per network of this prefix; 64 is one subscriber, 128 one address), not {limits.IPv6PrefixLength}");
        }
    }
}
