namespace Gateway.Tests.Metrics;

/// <summary>The validator itself: it accepts good expositions and rejects each bad one for the rule it breaks.</summary>
public sealed class ExpositionFormatTests
{
    [Theory]
    [MemberData(nameof(ExpositionExamples.Good), MemberType = typeof(ExpositionExamples))]
    public void Good_expositions_have_no_problems(string example, string text)
    {
        var problems = ExpositionFormat.Check(text);
        Assert.True(problems.Count == 0, $"{example}: {string.Join("; ", problems)}");
    }

    [Theory]
    [MemberData(nameof(ExpositionExamples.Bad), MemberType = typeof(ExpositionExamples))]
    public void Each_bad_exposition_is_rejected_for_the_rule_it_breaks_and_no_other(ExpositionRule rule, int line, string text)
    {
        var problems = ExpositionFormat.Check(text);
        Assert.Equal([(line, rule)], problems.Select(p => (p.Line, p.Rule)));
    }

    [Fact]
    public void A_failed_assertion_names_the_rule_and_quotes_the_line()
    {
        var failure = Assert.ThrowsAny<Exception>(() => ExpositionFormat.AssertValid(ExpositionExamples.Lines("# HELP a x", "# TYPE a gauge", "a{x=\"1\"} 1", "a-b 2")));
        Assert.Contains("line 4: MetricName", failure.Message);
        Assert.Contains("a-b 2", failure.Message);
    }

    [Theory]
    [InlineData("0", 0.0)]
    [InlineData("-0.5", -0.5)]
    [InlineData(".5", 0.5)]
    [InlineData("1.", 1.0)]
    [InlineData("1e3", 1000.0)]
    [InlineData("1E-05", 0.00001)]
    [InlineData("+7", 7.0)]
    [InlineData("+Inf", double.PositiveInfinity)]
    [InlineData("-Inf", double.NegativeInfinity)]
    [InlineData("Inf", double.PositiveInfinity)]
    [InlineData("NaN", double.NaN)]
    public void Values_are_read_as_prometheus_reads_them(string token, double expected)
    {
        Assert.True(ExpositionLine.TryParseFloat(token, out var value));
        Assert.Equal(expected, value);
    }

    [Theory]
    [InlineData("")]
    [InlineData("1,5")]
    [InlineData("1e")]
    [InlineData("--1")]
    [InlineData("+-Inf")]
    [InlineData("+NaN")]
    [InlineData("Infinite")]
    [InlineData("0x1p3")]
    [InlineData("1_000")]
    public void Non_floats_are_not_values(string token)
    {
        Assert.False(ExpositionLine.TryParseFloat(token, out _));
    }
}
