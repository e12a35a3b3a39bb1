using System.Net;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Admin;

public sealed class AdminEndpointTests
{
    [Fact]
    public async Task Health_and_readiness_answer_on_the_admin_listener_only()
    {
        await using var backend = await Backend.StartAsync("b1");
        // A catch-all route: whatever the public listeners do not proxy, the backend answers.
        var proxy = GatewayServer.Proxy([("all", "/", "chat")], [("chat", [backend])]);
        await using var gateway = await GatewayServer.StartAsync(GatewayServer.Config(proxy));
        using var http = new HttpClient();

        var health = await http.GetAsync(new Uri(gateway.Admin, "/healthz"));
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        Assert.Equal("ok\n", await health.Content.ReadAsStringAsync());
        var ready = await http.GetAsync(new Uri(gateway.Admin, "/readyz"));
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync(new Uri(gateway.Admin, "/chat/lobby"))).StatusCode);

        // On the public listener the same path is the backend's, proxied: the gateway's own endpoints are not there.
        var publicHealth = await http.GetAsync(new Uri(gateway.Http, "/readyz"));
        Assert.Equal(HttpStatusCode.NotFound, publicHealth.StatusCode);
        var whoami = await http.GetStringAsync(new Uri(gateway.Http, "/whoami"));
        Assert.Equal("b1", whoami.Trim());
    }
}
