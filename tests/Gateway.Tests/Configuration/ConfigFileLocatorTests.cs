using Gateway.Configuration;

namespace Gateway.Tests.Configuration;

public sealed class ConfigFileLocatorTests : IDisposable
{
    private readonly string _file = Path.GetTempFileName();

    public void Dispose() => File.Delete(_file);

    [Fact]
    public void Command_line_wins_over_the_environment()
    {
        Assert.Equal(_file, ConfigFileLocator.Locate(["--config", _file], _ => "/nowhere.json"));
        Assert.Equal(_file, ConfigFileLocator.Locate([$"--config={_file}"], _ => "/nowhere.json"));
    }

    [Fact]
    public void The_environment_variable_is_used_without_an_argument()
    {
        Assert.Equal(_file, ConfigFileLocator.Locate([], name => name == "GATEWAY_CONFIG" ? _file : null));
    }

    [Fact]
    public void The_config_argument_does_not_reach_the_rest_of_the_configuration()
    {
        Assert.Equal(["--urls", "x"], ConfigFileLocator.RemoveConfigArguments(["--config", _file, "--urls", "x"]));
    }

    [Fact]
    public void A_missing_file_is_a_startup_error()
    {
        var error = Assert.Throws<GatewayStartupException>(() => ConfigFileLocator.Locate(["--config", "/no/such/file.json"], _ => null));
        Assert.Equal(GatewayStartupException.ConfigurationExitCode, error.ExitCode);
        Assert.Contains("/no/such/file.json", error.Message);
    }
}
