using System.Text.Json.Nodes;
using Gateway.Tests.Handshake;
using Gateway.Tests.Infrastructure;
using Gateway.Tests.Relay;

namespace Gateway.Tests.Identity;

/// <summary>An edit of a policy's Identity applies to the next handshakes without a restart: how signing keys are rotated.</summary>
[Collection(SerialCollection.Name)]
public sealed class IdentityReloadTests : IDisposable
{
    private readonly TestTokens _tokens = new();

    public void Dispose() => _tokens.Dispose();

    private async Task<int> StatusAsync(GatewayServer gateway, string token) =>
        (await RawConnection.SendAsync(gateway.Ws, RawRequest.Handshake($"/raw/{Guid.NewGuid():N}", edits: [$"Authorization: Bearer {token}"]))).Status;

    [Fact]
    public async Task A_new_key_file_named_in_a_reload_takes_over_and_open_tunnels_stay()
    {
        await using var backend = new RawBackend();
        var policy = new JsonObject
        {
            ["Identity"] = new JsonObject
            {
                ["SigningKeys"] = HandshakeGateway.Strings(_tokens.RsaPublicKeyFile),
                ["Issuer"] = TestTokens.Issuer,
                ["Audience"] = TestTokens.Audience,
            },
        };
        await using var gateway = await GatewayServer.StartAsync(RelayConfig.Build(backend.Address, policy));
        var rsa = _tokens.Create("alice", TestTokens.Signer.Rsa);
        var ec = _tokens.Create("alice", TestTokens.Signer.Ec);
        Assert.Equal(101, await StatusAsync(gateway, rsa));
        Assert.Equal(401, await StatusAsync(gateway, ec));
        await using var open = await RawWebSocketClient.ConnectAsync(gateway.Ws, "/raw/open", $"Authorization: Bearer {rsa}");

        var edit = (JsonObject)JsonNode.Parse(await File.ReadAllTextAsync(gateway.ConfigPath))!;
        edit["Gateway"]!["WebSocketPolicies"]!["test"]!["Identity"]!["SigningKeys"] = HandshakeGateway.Strings(_tokens.EcPublicKeyFile);
        await gateway.RewriteConfigAsync(edit.ToJsonString());

        await Retry.Eventually(async () => Assert.Equal(101, await StatusAsync(gateway, ec)), TimeSpan.FromSeconds(10));
        Assert.Equal(401, await StatusAsync(gateway, rsa));
        await open.SendAsync(RawFrames.Encode(RawFrame.Text, "still here"u8));
        Assert.Equal(RawFrame.Text, (await open.ReceiveAsync(TimeSpan.FromSeconds(5)))!.Opcode);
    }
}
