using Gateway.LoadBalancing;
using Gateway.Tests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using Yarp.ReverseProxy.LoadBalancing;

namespace Gateway.Tests.LoadBalancing;

/// <summary>
/// The gateway's tunnel-counting policies take the place of YARP's under their names: YARP builds a dictionary of the
/// policies by name, which refuses two of one name, so exactly one of each must be left.
/// </summary>
public sealed class TunnelBalancingRegistrationTests
{
    [Fact]
    public async Task The_gateway_resolves_one_policy_per_name_and_its_own_for_LeastRequests_and_PowerOfTwoChoices()
    {
        await using var gateway = await GatewayServer.StartAsync(GatewayServer.Config(GatewayServer.Proxy([], [])));

        var policies = gateway.Services.GetServices<ILoadBalancingPolicy>().ToArray();

        var names = policies.Select(p => p.Name).ToArray();
        Assert.Equal(names.Distinct(StringComparer.OrdinalIgnoreCase).Count(), names.Length);
        Assert.IsType<LeastRequestsPolicy>(Assert.Single(policies, p => p.Name == LoadBalancingPolicies.LeastRequests));
        Assert.IsType<PowerOfTwoChoicesPolicy>(Assert.Single(policies, p => p.Name == LoadBalancingPolicies.PowerOfTwoChoices));
        // YARP's others stay, beside the gateway's ConsistentHash.
        Assert.Superset(new HashSet<string>
        {
            LoadBalancingPolicies.FirstAlphabetical, LoadBalancingPolicies.Random, LoadBalancingPolicies.RoundRobin, "ConsistentHash",
        }, names.ToHashSet());
    }

    [Fact]
    public void Replaces_YARPs_in_a_bare_service_collection()
    {
        var services = new ServiceCollection();
        services.AddReverseProxy();
        services.AddTunnelAwareBalancing();
        using var provider = services.BuildServiceProvider();

        var policies = provider.GetServices<ILoadBalancingPolicy>().ToArray();

        Assert.Equal(5, policies.Length);
        Assert.IsType<LeastRequestsPolicy>(Assert.Single(policies, p => p.Name == LoadBalancingPolicies.LeastRequests));
        Assert.IsType<PowerOfTwoChoicesPolicy>(Assert.Single(policies, p => p.Name == LoadBalancingPolicies.PowerOfTwoChoices));
    }

    [Fact]
    public void Refuses_to_run_before_AddReverseProxy()
    {
        var services = new ServiceCollection();

        var error = Assert.Throws<InvalidOperationException>(() => services.AddTunnelAwareBalancing());
        Assert.Contains("AddReverseProxy", error.Message);
    }
}
