namespace Gateway.Identity;

internal enum AuthenticationStatus
{
    /// <summary>A valid token: claims are set as headers.</summary>
    Authenticated,

    /// <summary>No token, and the policy does not require one: the handshake passes without claim headers.</summary>
    Anonymous,

    /// <summary>No token where one is required, or a token that does not validate: 401.</summary>
    Unauthenticated,

    /// <summary>A valid token without a claim the policy requires: 403.</summary>
    Forbidden,
}

/// <summary>What the gate learns from a handshake's token.</summary>
/// <param name="Detail">Why a refusal, for the log: never the token itself.</param>
/// <param name="Subject">The token's <c>sub</c> (RFC 7519 §4.1.2), when it has one.</param>
/// <param name="ClosesAt">When the tunnel must close because the token expired (its <c>exp</c> plus the clock skew); null: never.</param>
internal readonly record struct AuthenticationOutcome(AuthenticationStatus Status, string? Detail = null, string? Subject = null, DateTimeOffset? ClosesAt = null)
{
    /// <summary>Whether a token was presented at all (a 401 then says <c>error="invalid_token"</c>, RFC 6750 §3.1).</summary>
    public bool TokenPresented { get; init; }
}
