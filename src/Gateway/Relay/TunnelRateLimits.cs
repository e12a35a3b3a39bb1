using Gateway.Configuration;
using Gateway.Handshake;
using Gateway.Policies;

namespace Gateway.Relay;

/// <summary>What the relay does with a data frame the rate limits were asked about.</summary>
internal enum RateDecision : byte
{
    Pass,
    Hold,
    Drop,
    Close,
}

/// <summary>One scope's numbers (messages and bytes), as the relay uses them.</summary>
internal readonly record struct ScopeRate(BucketRate Messages, BucketRate Bytes)
{
    public bool IsOn => Messages.IsOn || Bytes.IsOn;

    public static ScopeRate From(RateLimitScopeOptions options) => new(BucketRate.From(options.Messages), BucketRate.From(options.Bytes));
}

/// <summary>A policy's <c>RateLimits</c>, compiled: immutable, replaced as a whole when the policies reload.</summary>
internal sealed class RateLimitSettings
{
    private RateLimitSettings(RateLimitAction action, ScopeRate connection, ScopeRate client, ScopeRate user, ScopeRate route, ScopeRate backend)
    {
        Action = action;
        Connection = connection;
        Client = client;
        User = user;
        Route = route;
        Backend = backend;
    }

    public RateLimitAction Action { get; }
    public ScopeRate Connection { get; }
    public ScopeRate Client { get; }
    public ScopeRate User { get; }
    public ScopeRate Route { get; }
    public ScopeRate Backend { get; }

    public bool FromClientOn => Connection.IsOn || Client.IsOn || User.IsOn || Route.IsOn;

    /// <summary>The policy's limits, or null when it sets none (the relay then asks nothing per frame).</summary>
    public static RateLimitSettings? For(WebSocketPolicy policy)
    {
        var options = policy.Options.RateLimits;
        var connection = ScopeRate.From(options.PerConnection);
        var client = ScopeRate.From(options.PerClient);
        var user = ScopeRate.From(options.PerUser);
        var route = ScopeRate.From(options.PerRoute);
        var backend = ScopeRate.From(options.BackendPerConnection);
        // Decided before anything is allocated: most policies set no limit (a settings object per tunnel was garbage).
        return connection.IsOn || client.IsOn || user.IsOn || route.IsOn || backend.IsOn
            ? new RateLimitSettings(options.Action, connection, client, user, route, backend)
            : null;
    }
}

/// <summary>
/// One tunnel's rate limits: its own buckets (client to backend, backend to client) and the shared entries of its client,
/// user and route. Each direction is asked only by that direction's read loop, so the tunnel's own buckets need no lock;
/// the shared ones take theirs. A frame is let through only when every bucket that applies has room, and what the ones
/// before a refusing bucket took is given back, so a refused frame costs nothing.
/// </summary>
internal sealed class TunnelRateLimits
{
    private readonly SharedRateBuckets _shared;
    private readonly TimeProvider _time;
    private readonly string _policy;
    private readonly string _route;
    private readonly ClientKey _client;
    private readonly string? _user;
    private volatile RateLimitSettings _settings;

    private TokenBucket _messages;
    private TokenBucket _bytes;
    private TokenBucket _backendMessages;
    private TokenBucket _backendBytes;
    private SharedBucket? _clientEntry;
    private SharedBucket? _userEntry;
    private SharedBucket? _routeEntry;
    private int _released;

    public TunnelRateLimits(RateLimitSettings settings, SharedRateBuckets shared, TimeProvider time, string policy, string route, ClientKey client, string? user)
    {
        _settings = settings;
        _shared = shared;
        _time = time;
        _policy = policy;
        _route = route;
        _client = client;
        _user = string.IsNullOrEmpty(user) ? null : user;
    }

    public RateLimitSettings Settings => _settings;

    /// <summary>The policies reloaded: new numbers apply from the next frame (a scope turned on joins its shared entry then).</summary>
    public void Update(RateLimitSettings settings) => _settings = settings;

    /// <summary>A data frame from the client: its message's first frame (<paramref name="firstFrame"/>) costs a message too.</summary>
    /// <param name="now">The clock (<see cref="TimeProvider.GetTimestamp"/>), or for frames that were held, when the hold was due.</param>
    public RateDecision FromClient(bool firstFrame, long payload, long now, out double waitSeconds)
    {
        var settings = _settings;
        var frequency = _time.TimestampFrequency;
        double messages = firstFrame ? 1 : 0;
        if (!firstFrame && settings.Action == RateLimitAction.Drop)
        {
            // The rest of a message whose first frame went through cannot be dropped (the backend would get half a
            // message): it is charged, and what it leaves owing holds back the next message.
            ChargeAll(settings, payload, now, frequency);
            waitSeconds = 0;
            return RateDecision.Pass;
        }
        if (settings.Connection.IsOn && !TakeOwn(ref _messages, ref _bytes, settings.Connection, messages, payload, now, frequency, out waitSeconds))
        {
            return settings.Action.Decision();
        }
        // Then the shared ones; a refusal gives back what the ones before it took, so a refused frame costs nothing.
        if (!TakeShared(ref _clientEntry, settings.Client, SharedBucketScope.Client, null, messages, payload, now, frequency, out waitSeconds))
        {
            Refund(settings, Taken.Connection, messages, payload);
            return settings.Action.Decision();
        }
        if (!TakeShared(ref _userEntry, settings.User, SharedBucketScope.User, _user, messages, payload, now, frequency, out waitSeconds))
        {
            Refund(settings, Taken.Connection | Taken.Client, messages, payload);
            return settings.Action.Decision();
        }
        if (!TakeShared(ref _routeEntry, settings.Route, SharedBucketScope.Route, _route, messages, payload, now, frequency, out waitSeconds))
        {
            Refund(settings, Taken.Connection | Taken.Client | Taken.User, messages, payload);
            return settings.Action.Decision();
        }
        return RateDecision.Pass;
    }

    /// <summary>A data frame from the backend (<c>BackendPerConnection</c>).</summary>
    public RateDecision FromBackend(bool firstFrame, long payload, long now, out double waitSeconds)
    {
        var settings = _settings;
        waitSeconds = 0;
        if (!settings.Backend.IsOn)
        {
            return RateDecision.Pass;
        }
        var frequency = _time.TimestampFrequency;
        if (!firstFrame && settings.Action == RateLimitAction.Drop)
        {
            Charge(ref _backendMessages, ref _backendBytes, settings.Backend, 0, payload, now, frequency);
            return RateDecision.Pass;
        }
        return TakeOwn(ref _backendMessages, ref _backendBytes, settings.Backend, firstFrame ? 1 : 0, payload, now, frequency, out waitSeconds)
            ? RateDecision.Pass : settings.Action.Decision();
    }

    /// <summary>The tunnel ended: its shared entries may expire once no other tunnel holds them.</summary>
    public void Release()
    {
        if (Interlocked.Exchange(ref _released, 1) != 0)
        {
            return;
        }
        ReleaseEntry(_clientEntry);
        ReleaseEntry(_userEntry);
        ReleaseEntry(_routeEntry);
    }

    private void ReleaseEntry(SharedBucket? entry)
    {
        if (entry is not null)
        {
            _shared.Release(entry);
        }
    }

    private static bool TakeOwn(ref TokenBucket messages, ref TokenBucket bytes, ScopeRate rate, double messageCost, long payload,
        long now, long frequency, out double waitSeconds)
    {
        waitSeconds = 0;
        if (messageCost > 0 && rate.Messages.IsOn && !messages.TryTake(messageCost, rate.Messages, now, frequency, out waitSeconds))
        {
            return false;
        }
        if (rate.Bytes.IsOn && !bytes.TryTake(payload, rate.Bytes, now, frequency, out waitSeconds))
        {
            if (messageCost > 0 && rate.Messages.IsOn)
            {
                messages.Refund(messageCost, rate.Messages);
            }
            return false;
        }
        return true;
    }

    private static void Charge(ref TokenBucket messages, ref TokenBucket bytes, ScopeRate rate, double messageCost, long payload, long now, long frequency)
    {
        if (messageCost > 0 && rate.Messages.IsOn)
        {
            messages.Charge(messageCost, rate.Messages, now, frequency);
        }
        if (rate.Bytes.IsOn)
        {
            bytes.Charge(payload, rate.Bytes, now, frequency);
        }
    }

    private bool TakeShared(ref SharedBucket? entry, ScopeRate rate, SharedBucketScope scope, string? name, double messageCost, long payload,
        long now, long frequency, out double waitSeconds)
    {
        waitSeconds = 0;
        if (!rate.IsOn || (scope == SharedBucketScope.User && _user is null) || Volatile.Read(ref _released) != 0)
        {
            return true; // no user known: the per-user limit does not apply
        }
        entry ??= _shared.Acquire(new SharedBucketKey(_policy, scope, scope == SharedBucketScope.Client ? _client : default,
            name));
        lock (entry.Gate)
        {
            entry.MessageRate = rate.Messages;
            entry.ByteRate = rate.Bytes;
            entry.LastUsed = now;
            return TakeOwn(ref entry.Messages, ref entry.Bytes, rate, messageCost, payload, now, frequency, out waitSeconds);
        }
    }

    private void ChargeAll(RateLimitSettings settings, long payload, long now, long frequency)
    {
        if (settings.Connection.IsOn)
        {
            Charge(ref _messages, ref _bytes, settings.Connection, 0, payload, now, frequency);
        }
        ChargeShared(_clientEntry, settings.Client, payload, now, frequency);
        ChargeShared(_userEntry, settings.User, payload, now, frequency);
        ChargeShared(_routeEntry, settings.Route, payload, now, frequency);
    }

    private static void ChargeShared(SharedBucket? entry, ScopeRate rate, long payload, long now, long frequency)
    {
        if (entry is null || !rate.IsOn)
        {
            return;
        }
        lock (entry.Gate)
        {
            Charge(ref entry.Messages, ref entry.Bytes, rate, 0, payload, now, frequency);
        }
    }

    [Flags]
    private enum Taken : byte
    {
        Connection = 1,
        Client = 2,
        User = 4,
    }

    /// <summary>A later bucket refused the frame: the ones in <paramref name="taken"/> get back what they took for it.</summary>
    private void Refund(RateLimitSettings settings, Taken taken, double messageCost, long payload)
    {
        if ((taken & Taken.Connection) != 0 && settings.Connection.IsOn)
        {
            Refund(ref _messages, ref _bytes, settings.Connection, messageCost, payload);
        }
        if ((taken & Taken.Client) != 0)
        {
            RefundShared(_clientEntry, settings.Client, messageCost, payload);
        }
        if ((taken & Taken.User) != 0 && _user is not null)
        {
            RefundShared(_userEntry, settings.User, messageCost, payload);
        }
    }

    private static void RefundShared(SharedBucket? entry, ScopeRate rate, double messageCost, long payload)
    {
        if (entry is null || !rate.IsOn)
        {
            return;
        }
        lock (entry.Gate)
        {
            Refund(ref entry.Messages, ref entry.Bytes, rate, messageCost, payload);
        }
    }

    private static void Refund(ref TokenBucket messages, ref TokenBucket bytes, ScopeRate rate, double messageCost, long payload)
    {
        if (messageCost > 0 && rate.Messages.IsOn)
        {
            messages.Refund(messageCost, rate.Messages);
        }
        if (rate.Bytes.IsOn)
        {
            bytes.Refund(payload, rate.Bytes);
        }
    }
}

internal static class RateLimitActionExtensions
{
    public static RateDecision Decision(this RateLimitAction action) => action switch
    {
        RateLimitAction.Hold => RateDecision.Hold,
        RateLimitAction.Drop => RateDecision.Drop,
        _ => RateDecision.Close,
    };
}
