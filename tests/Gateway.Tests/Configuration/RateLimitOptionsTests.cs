using Gateway.Configuration;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Configuration;

public sealed class RateLimitOptionsTests
{
    private const string Policy = "Gateway:WebSocketPolicies:chat:RateLimits";

    [Fact]
    public void The_issue_names_bind_and_an_unset_burst_is_one_seconds_worth()
    {
        var options = InMemoryGatewayOptions.Load(
            ($"{Policy}:PerConnection:Messages:PerSecond", "10"),
            ($"{Policy}:PerConnection:Messages:Burst", "20"),
            ($"{Policy}:PerConnection:Bytes:PerSecond", "65536"),
            ($"{Policy}:PerClient:Messages:PerSecond", "2.5"),
            ($"{Policy}:PerUser:Messages:PerSecond", "5"),
            ($"{Policy}:PerRoute:Bytes:PerSecond", "1000000"),
            ($"{Policy}:BackendPerConnection:Messages:PerSecond", "100"),
            ($"{Policy}:Action", "hold"));
        var limits = options.WebSocketPolicies["chat"].RateLimits;
        Assert.Equal(RateLimitAction.Hold, limits.Action);
        Assert.Equal(20, limits.PerConnection.Messages.Burst);
        Assert.Equal(2.5, limits.PerClient.Messages.PerSecond);
        Assert.Equal(new Gateway.Relay.BucketRate(65536, 65536), Gateway.Relay.BucketRate.From(limits.PerConnection.Bytes));
        Assert.Equal(new Gateway.Relay.BucketRate(2.5, 2.5), Gateway.Relay.BucketRate.From(limits.PerClient.Messages));
        Assert.False(Gateway.Relay.BucketRate.From(limits.PerUser.Bytes).IsOn);
        Assert.Equal(RateLimitAction.Close, new RateLimitOptions().Action);
    }

    [Theory]
    [InlineData("PerConnection:Messages:PerSecond", "-1", "PerConnection:Messages:PerSecond")]
    [InlineData("PerClient:Bytes:Burst", "-5", "PerClient:Bytes:Burst")]
    [InlineData("PerUser:Messages:Burst", "0.5", "PerUser:Messages:Burst")]
    [InlineData("PerRoute:Messages:Burst", "10", "PerRoute:Messages:PerSecond")]
    [InlineData("BackendPerConnection:Bytes:PerSecond", "fast", "BackendPerConnection:Bytes:PerSecond")]
    [InlineData("Action", "Throttle", "Action")]
    [InlineData("Action", "7", "Action")]
    [InlineData("PerConection:Messages:PerSecond", "1", "PerConection")]
    [InlineData("PerConnection:Message:PerSecond", "1", "PerConnection:Message")]
    public void A_bad_rate_limit_is_refused_at_load_with_one_line_naming_its_key(string key, string value, string reportedKey)
    {
        var error = Assert.Throws<GatewayConfigurationException>(() => InMemoryGatewayOptions.Load(($"{Policy}:{key}", value)));
        Assert.Equal($"{Policy}:{reportedKey}", error.Key);
        Assert.DoesNotContain('\n', error.Message);
    }
}
