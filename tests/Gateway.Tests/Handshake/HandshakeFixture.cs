using System.Text.Json.Nodes;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Handshake;

/// <summary>
/// One gateway with a route per policy under test, in front of a <see cref="ProbeBackend"/>, with TLS (HTTP/2).
/// <list type="bullet">
/// <item><c>/ws</c> (strict): WebSocket only, an Origin is required, exact and wildcard origins.</item>
/// <item><c>/open</c>: the built-in default policy (plain HTTP allowed, same origin only, a missing Origin allowed).</item>
/// <item><c>/sandbox</c>: only the opaque origin <c>null</c>. <c>/any</c>: <c>*</c>.</item>
/// <item><c>/proto</c>: subprotocols chat.v1 and chat.v2 only, one required. <c>/liar</c>: the probe answers with a subprotocol nobody offered.</item>
/// </list>
/// </summary>
public sealed class HandshakeFixture : IAsyncLifetime
{
    public const string AllowedOrigin = "https://chat.example.com";

    public TestCertificates Certificates { get; } = new();

    public ProbeBackend Backend { get; private set; } = null!;

    public GatewayServer Gateway { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Backend = await ProbeBackend.StartAsync();
        var (certificate, key, _) = Certificates.IssueServer("server", "localhost");
        var proxy = HandshakeGateway.Proxy(Backend,
            ("ws", "/ws", "strict"),
            ("open", "/open", null),
            ("sandbox", "/sandbox", "sandbox"),
            ("any", "/any", "any"),
            ("proto", "/proto", "proto"),
            ("liar", "/liar", null));
        var policies = new JsonObject
        {
            ["strict"] = new JsonObject
            {
                ["Handshake"] = new JsonObject
                {
                    ["AllowedOrigins"] = HandshakeGateway.Strings(AllowedOrigin, "https://*.apps.example.net", "http://localhost:8080"),
                    ["AllowMissingOrigin"] = false,
                    ["AllowPlainHttp"] = false,
                },
            },
            ["sandbox"] = new JsonObject { ["Handshake"] = new JsonObject { ["AllowedOrigins"] = HandshakeGateway.Strings("null") } },
            ["any"] = new JsonObject { ["Handshake"] = new JsonObject { ["AllowedOrigins"] = HandshakeGateway.Strings("*") } },
            ["proto"] = new JsonObject
            {
                ["Handshake"] = new JsonObject
                {
                    ["Subprotocols"] = HandshakeGateway.Strings("chat.v1", "chat.v2"),
                    ["RequireSubprotocol"] = true,
                },
            },
        };
        Gateway = await GatewayServer.StartAsync(HandshakeGateway.Config(proxy, policies,
            [new JsonObject { ["Path"] = certificate, ["KeyPath"] = key }]));
    }

    public async Task DisposeAsync()
    {
        await Gateway.DisposeAsync();
        await Backend.DisposeAsync();
        Certificates.Dispose();
    }
}
