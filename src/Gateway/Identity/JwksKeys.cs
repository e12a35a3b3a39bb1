using System.Net.Http.Headers;
using Microsoft.IdentityModel.Tokens;

namespace Gateway.Identity;

/// <summary>
/// The keys of a JSON Web Key Set (RFC 7517 §5) at a URL: fetched when the first handshake needs them (not at load, so
/// <c>--check-config</c> and a gateway no client reaches make no request to the issuer), again every refresh interval, and again when a
/// token names a key id the set does not hold (the issuer rotated its keys), at most once per <see cref="MinRefreshGap"/>
/// so that tokens with made-up key ids cannot make the gateway hammer the issuer. A failed fetch keeps the keys it had.
/// </summary>
internal sealed class JwksKeys : IDisposable
{
    /// <summary>The shortest time between two fetches, whatever asks for them.</summary>
    public static readonly TimeSpan MinRefreshGap = TimeSpan.FromSeconds(30);

    /// <summary>A key set is small; a bigger answer is not one.</summary>
    private const int MaxBytes = 1024 * 1024;

    private readonly HttpClient _http;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly TimeSpan _refreshInterval;
    private readonly SemaphoreSlim _fetching = new(1, 1);
    private volatile IReadOnlyList<SecurityKey> _keys = [];
    private long _lastFetch = long.MinValue;
    private long _nextFetch = long.MinValue;
    private readonly Lazy<Task> _first;

    public JwksKeys(string url, TimeSpan refreshInterval, HttpClient http, TimeProvider time, ILogger logger)
    {
        Url = url;
        _refreshInterval = refreshInterval;
        _http = http;
        _time = time;
        _logger = logger;
        _first = new Lazy<Task>(() => RefreshAsync(force: true));
    }

    public string Url { get; }

    public IReadOnlyList<SecurityKey> Keys => _keys;

    /// <summary>The keys, once the first fetch has ended (well or not); starts a refresh in the background when one is due.</summary>
    public async ValueTask<IReadOnlyList<SecurityKey>> GetAsync(CancellationToken cancellationToken)
    {
        var first = _first.Value;
        if (!first.IsCompleted)
        {
            await first.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        if (_time.GetTimestamp() >= Volatile.Read(ref _nextFetch))
        {
            // In the background: this handshake goes on with the keys there are.
            _ = RefreshAsync(force: false);
        }
        return _keys;
    }

    public bool Holds(string? keyId) => keyId is not null && _keys.Any(key => string.Equals(key.KeyId, keyId, StringComparison.Ordinal));

    /// <summary>A token named a key the set does not hold: fetch again now, unless a fetch was made very recently.</summary>
    public async ValueTask<bool> RefreshForUnknownKeyAsync(CancellationToken cancellationToken)
    {
        var last = Volatile.Read(ref _lastFetch);
        if (last != long.MinValue && _time.GetElapsedTime(last) < MinRefreshGap)
        {
            return false;
        }
        await RefreshAsync(force: false).WaitAsync(cancellationToken).ConfigureAwait(false);
        return true;
    }

    private async Task RefreshAsync(bool force)
    {
        if (!await _fetching.WaitAsync(0).ConfigureAwait(false))
        {
            return;
        }
        try
        {
            var last = Volatile.Read(ref _lastFetch);
            if (!force && last != long.MinValue && _time.GetElapsedTime(last) < MinRefreshGap)
            {
                return;
            }
            Volatile.Write(ref _lastFetch, _time.GetTimestamp());
            Volatile.Write(ref _nextFetch, _time.GetTimestamp() + (long)(_refreshInterval.TotalSeconds * _time.TimestampFrequency));
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            using var request = new HttpRequestMessage(HttpMethod.Get, Url);
            request.Headers.Accept.Add(new MediaTypeWithQualityHeaderValue("application/json"));
            using var response = await _http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, timeout.Token).ConfigureAwait(false);
            if (!response.IsSuccessStatusCode)
            {
                Log.JwksFailed(_logger, Url, $"status {(int)response.StatusCode}", _keys.Count);
                return;
            }
            if (response.Content.Headers.ContentLength > MaxBytes)
            {
                Log.JwksFailed(_logger, Url, "the answer is over 1 MiB", _keys.Count);
                return;
            }
            var json = await response.Content.ReadAsStringAsync(timeout.Token).ConfigureAwait(false);
            var keys = new JsonWebKeySet(json).GetSigningKeys();
            if (keys.Count == 0)
            {
                Log.JwksFailed(_logger, Url, "the set holds no signing key", _keys.Count);
                return;
            }
            _keys = keys.ToArray();
            Log.JwksFetched(_logger, keys.Count, Url);
        }
        catch (Exception ex)
        {
            // Whatever went wrong (network, a bad answer, a key IdentityModel cannot read), the keys held stay in use:
            // a handshake waiting on the first fetch must not fail with it.
            Log.JwksFailed(_logger, Url, ex.Message, _keys.Count);
        }
        finally
        {
            _fetching.Release();
        }
    }

    public void Dispose() => _fetching.Dispose();
}
