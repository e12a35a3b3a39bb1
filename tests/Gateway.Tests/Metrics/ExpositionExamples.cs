namespace Gateway.Tests.Metrics;

/// <summary>
/// Hand-written expositions for <see cref="ExpositionFormatTests"/>: good ones (which promtool must accept too, see
/// <see cref="PromtoolTests"/>) and bad ones that each break one rule, on a known line.
/// </summary>
public static class ExpositionExamples
{
    public static TheoryData<string, string> Good => new()
    {
        {
            "counter with escaped label values, HELP escapes and a timestamp",
            Lines(
                """# HELP requests_total Requests by path \\ "quoted", on\ntwo lines""",
                "# TYPE requests_total counter",
                """requests_total{path="/a\"b\\c\nd",code="200"} 3 1700000000000""",
                """requests_total{path="/",code="404",} 0""")
        },
        {
            "histogram with two series, exponent bounds",
            Lines(
                "# HELP rtt_seconds Round trips.",
                "# TYPE rtt_seconds histogram",
                """rtt_seconds_bucket{side="client",le="1E-05"} 0""",
                """rtt_seconds_bucket{side="client",le="0.5"} 2""",
                """rtt_seconds_bucket{side="client",le="+Inf"} 3""",
                """rtt_seconds_sum{side="client"} 1.25""",
                """rtt_seconds_count{side="client"} 3""",
                """rtt_seconds_bucket{side="backend",le="1E-05"} 0""",
                """rtt_seconds_bucket{side="backend",le="0.5"} 0""",
                """rtt_seconds_bucket{side="backend",le="+Inf"} 0""",
                """rtt_seconds_sum{side="backend"} 0""",
                """rtt_seconds_count{side="backend"} 0""")
        },
        {
            "gauges with special values, blanks, comments and an untyped family",
            Lines(
                "# A comment that is neither HELP nor TYPE.",
                "",
                "# HELP temperature_celsius Special values.",
                "# TYPE temperature_celsius gauge",
                """temperature_celsius{probe="a"} +Inf""",
                """temperature_celsius{probe="b"} -Inf""",
                """temperature_celsius{ probe = "c" , } NaN""",
                "temperature_celsius{probe=\"d\"}\t-1.5e3",
                "temperature_celsius 0",
                "# HELP build_info An untyped family.",
                "# TYPE build_info untyped",
                """build_info{version="1.0"} 1""")
        },
        {
            "summary",
            Lines(
                "# HELP latency_seconds A summary.",
                "# TYPE latency_seconds summary",
                """latency_seconds{quantile="0.5"} 0.2""",
                """latency_seconds{quantile="0.99"} 0.9""",
                "latency_seconds_sum 12",
                "latency_seconds_count 30")
        },
    };

    public static TheoryData<ExpositionRule, int, string> Bad => new()
    {
        { ExpositionRule.FinalLineFeed, 3, "# HELP a x\n# TYPE a gauge\na 1" },
        { ExpositionRule.Syntax, 3, Gauge("a") },
        { ExpositionRule.Syntax, 3, Gauge("""a{x="1" 1""") },
        { ExpositionRule.Syntax, 3, Gauge("a 1 2 3") },
        { ExpositionRule.MetricName, 3, Gauge("1a 1") },
        { ExpositionRule.MetricName, 3, Gauge("a-b 1") },
        { ExpositionRule.LabelName, 3, Gauge("""a{1x="v"} 1""") },
        { ExpositionRule.LabelName, 3, Gauge("""a{__x="v"} 1""") },
        { ExpositionRule.DuplicateLabel, 3, Gauge("""a{x="1",x="2"} 1""") },
        { ExpositionRule.Escape, 3, Gauge("""a{x="\q"} 1""") },
        { ExpositionRule.Escape, 1, Lines("""# HELP a a tab\there""", "# TYPE a gauge", "a 1") },
        { ExpositionRule.Value, 3, Gauge("a one") },
        { ExpositionRule.Value, 3, Gauge("a 1,5") },
        { ExpositionRule.Timestamp, 3, Gauge("a 1 1.5") },
        { ExpositionRule.UnknownType, 2, Lines("# HELP a x", "# TYPE a counterish", "a 1") },
        { ExpositionRule.DuplicateHelp, 2, Lines("# HELP a x", "# HELP a y", "# TYPE a gauge", "a 1") },
        { ExpositionRule.DuplicateType, 3, Lines("# HELP a x", "# TYPE a gauge", "# TYPE a gauge", "a 1") },
        { ExpositionRule.MetadataAfterSamples, 3, Lines("# HELP a x", "a 1", "# TYPE a gauge") },
        { ExpositionRule.MissingHelp, 1, Lines("# TYPE a gauge", "a 1") },
        { ExpositionRule.NotGrouped, 7, Lines("# HELP a x", "# TYPE a gauge", """a{x="1"} 1""", "# HELP b x", "# TYPE b gauge", "b 1", """a{x="2"} 1""") },
        { ExpositionRule.CounterSuffix, 2, Lines("# HELP a x", "# TYPE a counter", "a 1") },
        { ExpositionRule.ReservedSuffix, 1, Lines("# HELP a_count x", "# TYPE a_count gauge", "a_count 1") },
        { ExpositionRule.SampleName, 7, Histogram("""h_bucket{le="1"} 1""", """h_bucket{le="+Inf"} 1""", "h_sum 1", "h_count 1", "h 1") },
        { ExpositionRule.SampleName, 3, Lines("# HELP s x", "# TYPE s summary", "s 1", "s_sum 1", "s_count 1") },
        { ExpositionRule.BucketLabel, 4, Histogram("""h_bucket{le="1"} 1""", """h_bucket{le="x"} 1""", """h_bucket{le="+Inf"} 1""", "h_sum 1", "h_count 1") },
        { ExpositionRule.BucketLabel, 3, Histogram("h_bucket 1", """h_bucket{le="+Inf"} 1""", "h_sum 1", "h_count 1") },
        { ExpositionRule.BucketOrder, 4, Histogram("""h_bucket{le="2"} 1""", """h_bucket{le="1"} 1""", """h_bucket{le="+Inf"} 1""", "h_sum 1", "h_count 1") },
        { ExpositionRule.BucketInf, 5, Histogram("""h_bucket{le="10"} 1""", "h_sum 1", "h_count 1") },
        { ExpositionRule.BucketInf, 6, Histogram("""h_bucket{le="1"} 1""", """h_bucket{le="Inf"} 1""", "h_sum 1", "h_count 1") },
        { ExpositionRule.BucketCounts, 4, Histogram("""h_bucket{le="1"} 5""", """h_bucket{le="2"} 3""", """h_bucket{le="+Inf"} 5""", "h_sum 1", "h_count 5") },
        { ExpositionRule.HistogramCount, 6, Histogram("""h_bucket{le="1"} 1""", """h_bucket{le="+Inf"} 3""", "h_sum 1", "h_count 4") },
        { ExpositionRule.HistogramCount, 4, Histogram("""h_bucket{le="+Inf"} 3""", "h_sum 1") },
        { ExpositionRule.HistogramSum, 4, Histogram("""h_bucket{le="+Inf"} 3""", "h_count 3") },
        { ExpositionRule.DuplicateSeries, 4, Gauge("""a{x="1",y="2"} 1""", """a{y="2",x="1"} 2""") },
    };

    /// <summary>Lines joined, each ended by a line feed as the format asks.</summary>
    public static string Lines(params string[] lines) => string.Concat(lines.Select(line => line + "\n"));

    private static string Gauge(params string[] samples) => Lines(["# HELP a x", "# TYPE a gauge", .. samples]);

    private static string Histogram(params string[] samples) => Lines(["# HELP h x", "# TYPE h histogram", .. samples]);
}
