namespace Gateway.Tests.Metrics;

/// <summary>The rule of the Prometheus text format (or of the exporter's naming) that an exposition broke.</summary>
public enum ExpositionRule
{
    /// <summary>The last line does not end with a line feed.</summary>
    FinalLineFeed,

    /// <summary>A line that is neither a sample, a HELP or TYPE line, a comment nor empty.</summary>
    Syntax,

    /// <summary>A metric name outside <c>[a-zA-Z_:][a-zA-Z0-9_:]*</c>.</summary>
    MetricName,

    /// <summary>A label name outside <c>[a-zA-Z_][a-zA-Z0-9_]*</c>, or one starting with the reserved <c>__</c>.</summary>
    LabelName,

    /// <summary>The same label name twice in one sample.</summary>
    DuplicateLabel,

    /// <summary>An escape other than <c>\\</c>, <c>\"</c>, <c>\n</c> in a label value, or than <c>\\</c>, <c>\n</c> in HELP text.</summary>
    Escape,

    /// <summary>A sample value that is not a float (Go's ParseFloat: decimal, <c>+Inf</c>, <c>-Inf</c>, <c>NaN</c>).</summary>
    Value,

    /// <summary>A timestamp that is not an integer count of milliseconds.</summary>
    Timestamp,

    /// <summary>A TYPE other than counter, gauge, histogram, summary, untyped.</summary>
    UnknownType,

    DuplicateHelp,

    DuplicateType,

    /// <summary>HELP or TYPE after the family's first sample.</summary>
    MetadataAfterSamples,

    /// <summary>A family without HELP (promtool's linter rejects it).</summary>
    MissingHelp,

    /// <summary>A family's lines split by another family's.</summary>
    NotGrouped,

    /// <summary>A counter whose name (and so its samples' names) does not end in <c>_total</c>.</summary>
    CounterSuffix,

    /// <summary>A family that is not a histogram or summary named <c>*_bucket</c>, <c>*_sum</c> or <c>*_count</c>.</summary>
    ReservedSuffix,

    /// <summary>A sample name the family's type does not have (a histogram's bare name, a summary sample without quantile).</summary>
    SampleName,

    /// <summary>A <c>_bucket</c> without a float <c>le</c>, or <c>le</c> on <c>_sum</c>/<c>_count</c>.</summary>
    BucketLabel,

    /// <summary>Bucket bounds not strictly ascending.</summary>
    BucketOrder,

    /// <summary>A histogram series whose last bucket is not <c>le="+Inf"</c>.</summary>
    BucketInf,

    /// <summary>Cumulative bucket counts that decrease or are negative.</summary>
    BucketCounts,

    /// <summary>A histogram series without <c>_count</c>, or whose <c>_count</c> differs from its <c>+Inf</c> bucket.</summary>
    HistogramCount,

    /// <summary>A histogram series without <c>_sum</c>.</summary>
    HistogramSum,

    /// <summary>Two samples with the same name and label set.</summary>
    DuplicateSeries,
}

/// <summary>One broken rule, at a 1-based line of the exposition.</summary>
public sealed record ExpositionProblem(int Line, ExpositionRule Rule, string Detail)
{
    public override string ToString() => $"line {Line}: {Rule}: {Detail}";
}
