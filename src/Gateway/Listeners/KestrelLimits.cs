using Gateway.Configuration;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Gateway.Listeners;

/// <summary>
/// Kestrel's own limits, from the file's <c>Kestrel:Limits</c> section under Kestrel's own names (request line and
/// header sizes, the time a client may take to send its request headers, HTTP/2 limits...). ASP.NET Core binds only
/// endpoints from <c>Kestrel</c>, not limits, so the gateway binds them, and checks them at load like its own keys.
/// </summary>
internal static class KestrelLimits
{
    public const string SectionName = "Kestrel:Limits";

    /// <summary>
    /// A client gets this long to send a whole request head (the handshake), instead of Kestrel's 30 s: the same
    /// time the gateway allows for a TLS handshake, so a slow or silent client is dropped soon.
    /// </summary>
    public static readonly TimeSpan DefaultRequestHeadersTimeout = TimeSpan.FromSeconds(10);

    public static void Apply(KestrelServerLimits limits, IConfiguration configuration)
    {
        limits.RequestHeadersTimeout = DefaultRequestHeadersTimeout;
        configuration.GetSection(SectionName).Bind(limits, binder => binder.ErrorOnUnknownConfiguration = true);
    }

    /// <summary>
    /// Binds the section onto a scratch copy, so an unknown key or a bad value stops the gateway at load. On failure
    /// each key is bound alone, to name the one at fault (the binder names only the property, Kestrel's setters not even that).
    /// </summary>
    public static void Validate(IConfiguration configuration)
    {
        var section = configuration.GetSection(SectionName);
        if (!section.Exists() || TryApply(configuration, out _))
        {
            return;
        }
        foreach (var child in section.GetChildren())
        {
            var alone = new ConfigurationBuilder().AddInMemoryCollection(child.AsEnumerable()).Build();
            if (!TryApply(alone, out var problem))
            {
                throw new GatewayConfigurationException(child.Path, problem!);
            }
        }
        TryApply(configuration, out var whole);
        throw new GatewayConfigurationException(SectionName, whole!);
    }

    private static bool TryApply(IConfiguration configuration, out string? problem)
    {
        try
        {
            Apply(new KestrelServerOptions().Limits, configuration);
            problem = null;
            return true;
        }
        catch (InvalidOperationException ex) when (ex.Message.Contains(nameof(BinderOptions.ErrorOnUnknownConfiguration), StringComparison.Ordinal))
        {
            var known = typeof(KestrelServerLimits).GetProperties().Select(p => p.Name).Order(StringComparer.Ordinal);
            problem = $"unknown key (expected one of: {string.Join(", ", known)})";
            return false;
        }
        catch (Exception ex) when (ex is InvalidOperationException or ArgumentException or FormatException or System.Reflection.TargetInvocationException)
        {
            // The innermost message says what is wrong ("Value must be a positive number", "'soon' was not recognized...").
            var inner = ex;
            while (inner.InnerException is not null)
            {
                inner = inner.InnerException;
            }
            var message = inner is ArgumentException argument && argument.ParamName is { } name
                ? inner.Message.Replace($" (Parameter '{name}')", string.Empty, StringComparison.Ordinal)
                : inner.Message;
            problem = string.Join("; ", message.Split('\n', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Select(line => line.TrimEnd('.')));
            return false;
        }
    }
}
