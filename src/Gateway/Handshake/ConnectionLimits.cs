using Gateway.Configuration;
using System.Net;
using System.Threading.RateLimiting;
using Gateway.Policies;

namespace Gateway.Handshake;

/// <summary>
/// A policy's limits, on System.Threading.RateLimiting: a token bucket per client for the handshake rate, and
/// concurrency limiters (in total, and per client) for open tunnels. A client is an IPv4 address or an IPv6 network
/// of the policy's prefix length (<see cref="ClientKey"/>). A tunnel holds its permits until the proxied request
/// ends, which for a WebSocket is when the tunnel closes.
/// </summary>
internal sealed class ConnectionLimits : IDisposable
{
    private readonly PartitionedRateLimiter<ClientKey>? _handshakeRate;
    private readonly ConcurrencyLimiter? _total;
    private readonly PartitionedRateLimiter<ClientKey>? _perClient;
    private readonly PartitionedRateLimiter<string>? _perUser;
    private readonly int _ipv6PrefixLength;

    public ConnectionLimits(ConnectionLimitOptions options)
    {
        _ipv6PrefixLength = options.IPv6PrefixLength;
        if (options.HandshakesPerMinutePerClient > 0)
        {
            // Bursts up to a minute's allowance, refilled evenly (fractionally, on the partitioned limiter's timer),
            // so Retry-After says when the next token is due rather than when a whole window ends.
            var rate = new TokenBucketRateLimiterOptions
            {
                TokenLimit = options.HandshakesPerMinutePerClient,
                TokensPerPeriod = 1,
                ReplenishmentPeriod = TimeSpan.FromTicks(Math.Max(1, TimeSpan.TicksPerMinute / options.HandshakesPerMinutePerClient)),
                QueueLimit = 0,
                AutoReplenishment = false,
            };
            // One factory delegate for all partitions: the partitioner runs per handshake and should not allocate.
            Func<ClientKey, TokenBucketRateLimiterOptions> rateFactory = _ => rate;
            _handshakeRate = PartitionedRateLimiter.Create<ClientKey, ClientKey>(
                client => RateLimitPartition.GetTokenBucketLimiter(client, rateFactory));
        }
        if (options.MaxConnections > 0)
        {
            _total = new ConcurrencyLimiter(new ConcurrencyLimiterOptions { PermitLimit = options.MaxConnections, QueueLimit = 0 });
        }
        if (options.MaxConnectionsPerClient > 0)
        {
            var perClient = new ConcurrencyLimiterOptions { PermitLimit = options.MaxConnectionsPerClient, QueueLimit = 0 };
            // Idle partitions (no open tunnel) are dropped by the partitioned limiter, so memory follows active clients.
            Func<ClientKey, ConcurrencyLimiterOptions> perClientFactory = _ => perClient;
            _perClient = PartitionedRateLimiter.Create<ClientKey, ClientKey>(
                client => RateLimitPartition.GetConcurrencyLimiter(client, perClientFactory));
        }
        if (options.MaxConnectionsPerUser > 0)
        {
            // The same machinery keyed by the token's subject: a user's tunnels from any address count together.
            var perUser = new ConcurrencyLimiterOptions { PermitLimit = options.MaxConnectionsPerUser, QueueLimit = 0 };
            Func<string, ConcurrencyLimiterOptions> perUserFactory = _ => perUser;
            _perUser = PartitionedRateLimiter.Create<string, string>(
                user => RateLimitPartition.GetConcurrencyLimiter(user, perUserFactory), StringComparer.Ordinal);
        }
    }

    public bool IsEmpty => _handshakeRate is null && _total is null && _perClient is null;

    /// <summary>
    /// Takes a permit for one more tunnel of <paramref name="user"/> (an authenticated subject), or returns false at the
    /// policy's <c>MaxConnectionsPerUser</c>. The lease is null when there is no per-user limit.
    /// </summary>
    public bool TryEnterUser(string user, out RateLimitLease? lease)
    {
        lease = null;
        if (_perUser is null)
        {
            return true;
        }
        lease = _perUser.AttemptAcquire(user);
        if (lease.IsAcquired)
        {
            return true;
        }
        lease.Dispose();
        lease = null;
        return false;
    }

    /// <summary>
    /// Takes a handshake token and the tunnel's permits for the client at <paramref name="address"/> (the connection's
    /// remote address, already taken from X-Forwarded-For when the peer is a trusted forwarder), or says which limit
    /// refused and, for the rate, when to retry.
    /// </summary>
    public RefusalReason? TryEnter(IPAddress? address, out Permit permit, out TimeSpan retryAfter)
    {
        permit = default;
        retryAfter = TimeSpan.Zero;
        var client = ClientKey.From(address, _ipv6PrefixLength);
        if (_handshakeRate is not null)
        {
            using var token = _handshakeRate.AttemptAcquire(client);
            if (!token.IsAcquired)
            {
                token.TryGetMetadata(MetadataName.RetryAfter, out retryAfter);
                return RefusalReason.RateLimit;
            }
        }

        RateLimitLease? total = null;
        if (_total is not null)
        {
            total = _total.AttemptAcquire();
            if (!total.IsAcquired)
            {
                total.Dispose();
                return RefusalReason.ConnectionLimit;
            }
        }
        RateLimitLease? perClient = null;
        if (_perClient is not null)
        {
            perClient = _perClient.AttemptAcquire(client);
            if (!perClient.IsAcquired)
            {
                perClient.Dispose();
                total?.Dispose();
                return RefusalReason.ClientConnectionLimit;
            }
        }
        permit = new Permit(total, perClient);
        return null;
    }

    public void Dispose()
    {
        _handshakeRate?.Dispose();
        _total?.Dispose();
        _perClient?.Dispose();
        _perUser?.Dispose();
    }

    /// <summary>The permits one open tunnel holds; disposing it gives them back.</summary>
    public readonly struct Permit : IDisposable
    {
        private readonly RateLimitLease? _total;
        private readonly RateLimitLease? _perClient;

        public Permit(RateLimitLease? total, RateLimitLease? perClient)
        {
            _total = total;
            _perClient = perClient;
        }

        public void Dispose()
        {
            _perClient?.Dispose();
            _total?.Dispose();
        }
    }
}
