using System.Net;
using System.Text.Json;

namespace ChatBackend.Tests;

public sealed class HttpEndpointTests(BackendFixture fixture) : IClassFixture<BackendFixture>
{
    [Fact]
    public async Task Healthz_returns_ok_as_plain_text()
    {
        using var http = fixture.Backend.CreateHttpClient();
        using var response = await http.GetAsync("healthz");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/plain", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal("ok", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Whoami_returns_the_instance_name()
    {
        using var http = fixture.Backend.CreateHttpClient();
        using var response = await http.GetAsync("whoami");

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/plain", response.Content.Headers.ContentType?.MediaType);
        Assert.Equal(RunningBackend.Instance, await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Headers_returns_request_headers_with_lower_case_names()
    {
        using var http = fixture.Backend.CreateHttpClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, "headers");
        request.Headers.Add("X-Test-Probe", "42");
        using var response = await http.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("42", json.RootElement.GetProperty("x-test-probe").GetString());
        Assert.Equal(fixture.Backend.HttpBase.Authority, json.RootElement.GetProperty("host").GetString());
    }

    [Fact]
    public async Task Root_serves_the_chat_page_with_its_assets()
    {
        using var http = fixture.Backend.CreateHttpClient();
        using var page = await http.GetAsync("/");
        using var script = await http.GetAsync("app.js");
        using var style = await http.GetAsync("app.css");

        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
        Assert.Contains("app.js", await page.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, script.StatusCode);
        Assert.Contains("'/chat/' + encodeURIComponent(room)", await script.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        Assert.Equal(HttpStatusCode.OK, style.StatusCode);
    }

    [Theory]
    [InlineData("chat/lobby")]
    [InlineData("echo")]
    public async Task Plain_http_on_a_websocket_endpoint_gets_426(string path)
    {
        using var http = fixture.Backend.CreateHttpClient();
        using var response = await http.GetAsync(path);

        Assert.Equal(HttpStatusCode.UpgradeRequired, response.StatusCode);
        Assert.Equal("websocket", Assert.Single(response.Headers.GetValues("Upgrade")));
    }
}
