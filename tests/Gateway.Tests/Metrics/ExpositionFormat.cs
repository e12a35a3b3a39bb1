namespace Gateway.Tests.Metrics;

/// <summary>
/// A strict checker of the Prometheus text exposition format (version 0.0.4) as the gateway's exporter writes it,
/// so that every machine checks /metrics, not only those with promtool. Lines are read by <see cref="ExpositionLine"/>;
/// this class checks the families: HELP and TYPE once each and before the samples, a family's lines together,
/// counters named <c>*_total</c> (the OpenTelemetry naming the exporter follows), histograms complete and
/// consistent, no series twice. It is stricter than promtool where the format implies a rule that promtool does not
/// check (bucket order and counts, duplicate series, grouping).
/// </summary>
public static class ExpositionFormat
{
    private static readonly string[] SeriesSuffixes = ["_bucket", "_sum", "_count"];

    /// <summary>Every problem in <paramref name="text"/>, in line order of discovery; empty when it is valid.</summary>
    public static IReadOnlyList<ExpositionProblem> Check(string text)
    {
        var problems = new List<ExpositionProblem>();
        var lines = text.Split('\n');
        var checker = new Families(problems);
        // Split leaves an empty last element after the final line feed.
        var count = text.EndsWith('\n') ? lines.Length - 1 : lines.Length;
        for (var index = 0; index < count; index++)
        {
            var line = lines[index];
            var number = index + 1;
            var content = line.TrimStart(' ', '\t');
            if (content.Length == 0)
            {
                continue; // empty lines are ignored
            }
            if (content[0] == '#')
            {
                if (ExpositionLine.ParseComment(line, number, problems) is { } metadata)
                {
                    checker.Add(metadata);
                }
            }
            else if (ExpositionLine.ParseSample(line, number, problems) is { } sample)
            {
                checker.Add(sample);
            }
        }
        if (text.Length > 0 && text[^1] != '\n')
        {
            problems.Add(new ExpositionProblem(lines.Length, ExpositionRule.FinalLineFeed, "the last line must end with a line feed"));
        }
        checker.Finish();
        return problems;
    }

    /// <summary>Fails the test with every problem and its line when <paramref name="text"/> is not valid.</summary>
    public static void AssertValid(string text)
    {
        var problems = Check(text);
        if (problems.Count == 0)
        {
            return;
        }
        var lines = text.Split('\n');
        var report = problems.Take(20).Select(p => $"{p}\n    {(p.Line <= lines.Length ? lines[p.Line - 1] : "")}");
        Assert.Fail($"{problems.Count} problem(s) in the Prometheus exposition:\n{string.Join("\n", report)}");
    }

    private sealed class Family(string name, int line)
    {
        public string Name { get; } = name;

        public int Line { get; } = line;

        public string Type { get; set; } = "untyped";

        public bool Typed { get; set; }

        public bool Help { get; set; }

        public int Samples { get; set; }

        public bool ReportedNotGrouped { get; set; }

        /// <summary>Histogram series by label set without <c>le</c>.</summary>
        public Dictionary<string, Histogram> Histograms { get; } = new(StringComparer.Ordinal);
    }

    private sealed class Histogram
    {
        public List<(string Le, double Bound, double Count)> Buckets { get; } = new();

        public double? Count { get; set; }

        public bool Sum { get; set; }

        public int LastLine { get; set; }
    }

    /// <summary>The state across lines: which families exist, which one is open, which series were seen.</summary>
    private sealed class Families(List<ExpositionProblem> problems)
    {
        private readonly Dictionary<string, Family> _families = new(StringComparer.Ordinal);
        private readonly HashSet<string> _closed = new(StringComparer.Ordinal);
        private readonly Dictionary<string, int> _series = new(StringComparer.Ordinal);
        private Family? _current;

        public void Add(ExpositionMetadata metadata)
        {
            var family = Enter(metadata.Name, metadata.Line, exact: true);
            var what = metadata.Keyword;
            if (family.Samples > 0)
            {
                Problem(metadata.Line, ExpositionRule.MetadataAfterSamples, $"{what} for '{family.Name}' after its samples");
            }
            if (what == "HELP")
            {
                if (family.Help)
                {
                    Problem(metadata.Line, ExpositionRule.DuplicateHelp, $"a second HELP for '{family.Name}'");
                }
                family.Help = true;
                return;
            }
            if (family.Typed)
            {
                Problem(metadata.Line, ExpositionRule.DuplicateType, $"a second TYPE for '{family.Name}'");
            }
            family.Typed = true;
            family.Type = metadata.Argument;
            if (family.Type == "counter" && !family.Name.EndsWith("_total", StringComparison.Ordinal))
            {
                Problem(metadata.Line, ExpositionRule.CounterSuffix, $"counter '{family.Name}' does not end in _total");
            }
        }

        public void Add(ExpositionSample sample)
        {
            var family = Enter(sample.Name, sample.Line, exact: false);
            family.Samples++;
            var key = sample.SeriesKey();
            if (_series.TryGetValue(key, out var first))
            {
                Problem(sample.Line, ExpositionRule.DuplicateSeries, $"the series {key} was already on line {first}");
                return;
            }
            _series[key] = sample.Line;

            if (family.Type == "histogram")
            {
                AddToHistogram(family, sample);
            }
            else if (family.Type == "summary" && sample.Name == family.Name && sample.Label("quantile") is null)
            {
                Problem(sample.Line, ExpositionRule.SampleName, $"summary sample '{sample.Name}' without a quantile label");
            }
        }

        /// <summary>Checks what can only be judged at the end: HELP present, names, complete histograms.</summary>
        public void Finish()
        {
            foreach (var family in _families.Values.OrderBy(f => f.Line))
            {
                if (!family.Help)
                {
                    Problem(family.Line, ExpositionRule.MissingHelp, $"'{family.Name}' has no HELP");
                }
                if (family.Type is not ("histogram" or "summary") && SeriesSuffixes.FirstOrDefault(s => family.Name.EndsWith(s, StringComparison.Ordinal)) is { } suffix)
                {
                    Problem(family.Line, ExpositionRule.ReservedSuffix, $"{family.Type} '{family.Name}' ends in {suffix}, which names a histogram's or summary's series");
                }
                foreach (var (labels, series) in family.Histograms)
                {
                    FinishHistogram(family, labels, series);
                }
            }
        }

        private void AddToHistogram(Family family, ExpositionSample sample)
        {
            if (sample.Name == family.Name)
            {
                Problem(sample.Line, ExpositionRule.SampleName, $"histogram '{family.Name}' has only _bucket, _sum and _count samples");
                return;
            }
            var key = sample.SeriesKey(without: "le")[sample.Name.Length..];
            if (!family.Histograms.TryGetValue(key, out var series))
            {
                family.Histograms[key] = series = new Histogram();
            }
            series.LastLine = sample.Line;
            var le = sample.Label("le");
            if (sample.Name != family.Name + "_bucket")
            {
                if (le is not null)
                {
                    Problem(sample.Line, ExpositionRule.BucketLabel, $"'{sample.Name}' has an le label; only _bucket has");
                }
                else if (sample.Name.EndsWith("_sum", StringComparison.Ordinal))
                {
                    series.Sum = true;
                }
                else
                {
                    series.Count = sample.Value;
                }
                return;
            }
            if (le is null || !ExpositionLine.TryParseFloat(le, out var bound) || double.IsNaN(bound))
            {
                Problem(sample.Line, ExpositionRule.BucketLabel, le is null ? "a bucket without an le label" : $"le=\"{le}\" is not a bound");
                return;
            }
            if (series.Buckets.Count > 0 && bound <= series.Buckets[^1].Bound)
            {
                Problem(sample.Line, ExpositionRule.BucketOrder, $"le=\"{le}\" follows le=\"{series.Buckets[^1].Le}\"; bounds must ascend");
            }
            // Buckets are cumulative: each counts every observation at or below its bound.
            if (sample.Value < 0 || double.IsNaN(sample.Value) || (series.Buckets.Count > 0 && sample.Value < series.Buckets[^1].Count))
            {
                Problem(sample.Line, ExpositionRule.BucketCounts, $"bucket le=\"{le}\" counts {sample.Value}, less than the bucket before it or below zero");
            }
            series.Buckets.Add((le, bound, sample.Value));
        }

        private void FinishHistogram(Family family, string labels, Histogram series)
        {
            var name = family.Name + labels;
            if (series.Buckets.Count == 0 || series.Buckets[^1].Le != "+Inf")
            {
                Problem(series.LastLine, ExpositionRule.BucketInf, $"histogram {name} does not end with an le=\"+Inf\" bucket");
            }
            else if (series.Count is { } count && count != series.Buckets[^1].Count)
            {
                Problem(series.LastLine, ExpositionRule.HistogramCount, $"histogram {name} has _count {count} but its +Inf bucket {series.Buckets[^1].Count}");
            }
            if (series.Count is null)
            {
                Problem(series.LastLine, ExpositionRule.HistogramCount, $"histogram {name} has no _count");
            }
            if (!series.Sum)
            {
                Problem(series.LastLine, ExpositionRule.HistogramSum, $"histogram {name} has no _sum");
            }
        }

        /// <summary>
        /// The family a line belongs to, made the open one. A sample named <c>x_bucket</c>/<c>x_sum</c>/<c>x_count</c>
        /// belongs to histogram (or summary) <c>x</c>; HELP and TYPE name their family exactly.
        /// </summary>
        private Family Enter(string name, int line, bool exact)
        {
            var family = _families.GetValueOrDefault(name);
            if (family is null && !exact)
            {
                foreach (var suffix in SeriesSuffixes)
                {
                    if (name.EndsWith(suffix, StringComparison.Ordinal)
                        && _families.TryGetValue(name[..^suffix.Length], out var stem)
                        && (stem.Type == "histogram" || (stem.Type == "summary" && suffix != "_bucket")))
                    {
                        family = stem;
                        break;
                    }
                }
            }
            if (family is null)
            {
                _families[name] = family = new Family(name, line);
            }
            if (family != _current)
            {
                if (_closed.Contains(family.Name) && !family.ReportedNotGrouped)
                {
                    family.ReportedNotGrouped = true;
                    Problem(line, ExpositionRule.NotGrouped, $"'{family.Name}' continues after another family began; a family's lines must be together");
                }
                if (_current is not null)
                {
                    _closed.Add(_current.Name);
                }
                _current = family;
            }
            return family;
        }

        private void Problem(int line, ExpositionRule rule, string detail) => problems.Add(new ExpositionProblem(line, rule, detail));
    }
}
