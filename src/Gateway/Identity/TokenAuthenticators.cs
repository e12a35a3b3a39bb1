using System.Collections.Concurrent;
using Gateway.Configuration;
using Microsoft.IdentityModel.Tokens;

namespace Gateway.Identity;

/// <summary>
/// Builds each policy's <see cref="TokenAuthenticator"/> when its rules are compiled (at start and after a reload), and
/// keeps one <see cref="JwksKeys"/> per URL across reloads, so a reload does not fetch the keys again.
/// </summary>
internal sealed class TokenAuthenticators : IDisposable
{
    private readonly HttpClient _http;
    private readonly TimeProvider _time;
    private readonly ILoggerFactory _loggers;
    private readonly ConcurrentDictionary<(string Url, TimeSpan Refresh), JwksKeys> _jwks = new();

    public TokenAuthenticators(TimeProvider time, ILoggerFactory loggers)
    {
        _time = time;
        _loggers = loggers;
        // Its own client: key sets come from the identity provider, not from a backend, and never through a proxy
        // the environment might name for other traffic.
        _http = new HttpClient(new SocketsHttpHandler { UseProxy = false, PooledConnectionLifetime = TimeSpan.FromMinutes(5) });
    }

    /// <summary>The log category of identity events (key fetches, unusable key files).</summary>
    public const string LogCategory = "Gateway.Identity";

    /// <summary>The policy's authenticator, or null when its identity is off.</summary>
    public TokenAuthenticator? Create(string policy, IdentityOptions options)
    {
        if (!options.Enabled)
        {
            return null;
        }
        var logger = _loggers.CreateLogger(LogCategory);
        var fileKeys = new List<SecurityKey>();
        foreach (var path in options.SigningKeys)
        {
            try
            {
                fileKeys.Add(SigningKeyFiles.Load(path));
            }
            catch (InvalidDataException ex)
            {
                // Checked at load; a file changed since then fails closed: its tokens are refused, the others pass.
                Log.KeyFileFailed(logger, policy, ex.Message);
            }
        }
        var jwks = string.IsNullOrWhiteSpace(options.JwksUrl)
            ? null
            : _jwks.GetOrAdd((options.JwksUrl, options.JwksRefreshInterval),
                key => new JwksKeys(key.Url, key.Refresh, _http, _time, logger));
        return new TokenAuthenticator(options, fileKeys, jwks);
    }

    public void Dispose()
    {
        foreach (var jwks in _jwks.Values)
        {
            jwks.Dispose();
        }
        _http.Dispose();
    }
}
