using Gateway.Relay;

namespace Gateway.Tests.Metrics;

public sealed class CloseCodeLabelTests
{
    [Fact]
    public void Registered_codes_are_their_own_label_and_allocate_nothing()
    {
        for (ushort code = 1000; code <= 1015; code++)
        {
            var label = RelayMetrics.CodeLabel(code);
            Assert.Equal(code.ToString(System.Globalization.CultureInfo.InvariantCulture), label);
            Assert.Same(label, RelayMetrics.CodeLabel(code)); // a constant, not a new string per close
        }
    }

    [Theory]
    [InlineData(0)]
    [InlineData(999)]
    [InlineData(1016)]
    [InlineData(2999)]
    [InlineData(3000)]
    [InlineData(4000)]
    [InlineData(4999)]
    [InlineData(5000)]
    [InlineData(65535)]
    public void Any_other_code_is_other(int code)
    {
        Assert.Equal("other", RelayMetrics.CodeLabel((ushort)code));
    }
}
