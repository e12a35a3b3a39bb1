namespace Gateway.Tests.Architecture;

/// <summary>
/// The gateway is an executable: its types are internal (the tests see them through InternalsVisibleTo), as YARP's are,
/// unless a user needs them. Public are the entry point and what embedding the gateway in another host takes.
/// </summary>
public sealed class PublicSurfaceTests
{
    [Fact]
    public void Only_the_entry_points_are_public()
    {
        var exported = typeof(GatewayApplication).Assembly.GetExportedTypes()
            .Where(type => !type.IsNested)
            .Select(type => type.FullName!)
            .Order()
            .ToArray();
        Assert.Equal(["Gateway.Configuration.GatewayStartupException", "Gateway.GatewayApplication", "Gateway.Program"], exported);
    }
}
