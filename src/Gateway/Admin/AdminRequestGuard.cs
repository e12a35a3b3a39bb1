using System.Net;
using Gateway.Configuration;

namespace Gateway.Admin;

/// <summary>
/// What the admin API refuses before it looks at a request. A browser can reach a loopback port, so the API refuses
/// whatever a web page could send: a request with an <c>Origin</c> (every cross-origin fetch and form post carries one,
/// RFC 6454 §7 / Fetch), cross-site fetch metadata (<c>Sec-Fetch-Site</c>, W3C Fetch Metadata), and a <c>Host</c>
/// that is a DNS name (DNS rebinding: a page whose name resolves to 127.0.0.1 sends its own name; RFC 9110 §7.2).
/// Changes (anything but GET and HEAD) need the token, or an operator's explicit <c>Admin:AllowUnauthenticatedChanges</c>.
/// Health, readiness and metrics are not the API and stay open to probes and scrapers.
/// </summary>
internal static class AdminRequestGuard
{
    public readonly record struct Rejection(int Status, string Message);

    public static Rejection? Refusal(HttpContext context)
    {
        var request = context.Request;
        if (request.Headers.Origin.Count > 0)
        {
            return new(StatusCodes.Status403Forbidden, "the admin API refuses requests from web pages (an Origin header)");
        }
        if (request.Headers["Sec-Fetch-Site"] is { Count: > 0 } site && site.ToString() is not ("none" or "same-origin"))
        {
            return new(StatusCodes.Status403Forbidden, "the admin API refuses cross-site requests (Sec-Fetch-Site)");
        }
        if (!IsAddressHost(request.Host))
        {
            return new(StatusCodes.Status403Forbidden,
                "the admin API answers only a Host that is an IP address or localhost (a DNS name could be a rebinding page's)");
        }

        var token = context.RequestServices.GetRequiredService<AdminToken>();
        if (!token.Allows(request.Headers.Authorization.ToString()))
        {
            return new(StatusCodes.Status401Unauthorized, "a bearer token is required");
        }
        var changes = !HttpMethods.IsGet(request.Method) && !HttpMethods.IsHead(request.Method);
        if (changes && !token.IsConfigured && !context.RequestServices.GetRequiredService<GatewayOptions>().Admin.AllowUnauthenticatedChanges)
        {
            return new(StatusCodes.Status403Forbidden,
                $"changes need a token: set {GatewayOptions.SectionName}:Admin:TokenEnvironmentVariable (or, to allow them without one, {GatewayOptions.SectionName}:Admin:AllowUnauthenticatedChanges)");
        }
        return null;
    }

    /// <summary>
    /// <c>localhost</c> or an IP literal, on any port (a port-forward may change it; a rebinding page cannot choose the
    /// address). HTTP/1.1 requires a Host (Kestrel refuses a request without one).
    /// </summary>
    private static bool IsAddressHost(HostString host)
    {
        var name = host.Host;
        return string.Equals(name, "localhost", StringComparison.OrdinalIgnoreCase)
            || IPAddress.TryParse(name.StartsWith('[') ? name.Trim('[', ']') : name, out _);
    }
}
