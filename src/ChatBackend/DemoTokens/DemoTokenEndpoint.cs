using System.Text.RegularExpressions;

namespace ChatBackend.DemoTokens;

/// <summary>
/// <c>GET /demo-token?name=NAME</c>: a token for anyone who asks, as the demo's chat page needs one before it connects.
/// Plain HTTP on a route outside the gateway's identity policy (a page cannot show a token before it has one).
/// </summary>
internal static partial class DemoTokenEndpoint
{
    public static IResult Handle(HttpContext context, string? name)
    {
        var issuer = context.RequestServices.GetService<DemoTokenIssuer>();
        if (issuer is null)
        {
            return Results.Text("demo tokens are off (start with --DemoToken:KeyFile PATH)\n", "text/plain", statusCode: StatusCodes.Status404NotFound);
        }

        // A short plain name: it becomes the X-User-Id header and the welcome line, so keep it readable.
        if (string.IsNullOrEmpty(name) || !NamePattern().IsMatch(name))
        {
            return Results.Text("name must be 1-32 letters, digits, '.', '_' or '-'\n", "text/plain", statusCode: StatusCodes.Status400BadRequest);
        }

        var token = issuer.Create(name, DateTime.UtcNow);
        // A token response must not be cached (RFC 6749 §5.1); the shape follows that section too.
        context.Response.Headers.CacheControl = "no-store";
        return Results.Json(new Dictionary<string, object>
        {
            ["access_token"] = token,
            ["token_type"] = "Bearer",
            ["expires_in"] = (int)issuer.Lifetime.TotalSeconds,
        });
    }

    [GeneratedRegex("^[A-Za-z0-9._-]{1,32}$")]
    private static partial Regex NamePattern();
}
