using System.Text.RegularExpressions;

namespace Gateway.Tests.Architecture;

/// <summary>
/// The capability folders' references to each other (a <c>using Gateway.X</c>, a name qualified by <c>Gateway.X.</c>, or
/// by <c>X.</c> alone, which inside the gateway's namespaces means the same; comments and strings aside), checked against the list below. The target (shared/design.md, issue 21) is a graph
/// without cycles in which <c>Configuration/</c> depends on no capability; until then the list is a ratchet: a new
/// reference between folders fails here until it is argued for and added, and a reference that went away must be taken
/// off the list, so the list only shrinks toward the target.
/// </summary>
public sealed partial class FolderDependencyTests
{
    /// <summary>Every reference between folders that exists today. Remove lines as cycles are broken; add none lightly.</summary>
    private static readonly string[] Known =
    [
        "AccessLogging -> Configuration",
        "Admin -> Configuration",
        "Admin -> Lifecycle",
        "Admin -> Listeners",
        "Admin -> Metrics",
        "Admin -> Relay",
        "Configuration -> Http",
        "Handshake -> AccessLogging",
        "Handshake -> Configuration",
        "Handshake -> Http",
        "Handshake -> Identity",
        "Handshake -> Listeners",
        "Handshake -> Metrics",
        "Handshake -> Policies",
        "Identity -> Configuration",
        "Identity -> Http",
        "Lifecycle -> Configuration",
        "Lifecycle -> LoadBalancing",
        "Lifecycle -> Relay",
        "Listeners -> Configuration",
        "Listeners -> Http",
        "Listeners -> Metrics",
        "Listeners -> Tls",
        "LoadBalancing -> Configuration",
        "LoadBalancing -> Http",
        "Policies -> Configuration",
        "Policies -> Http",
        "Proxy -> Configuration",
        "Proxy -> Handshake",
        "Proxy -> Health",
        "Proxy -> Http",
        "Proxy -> LoadBalancing",
        "Proxy -> Metrics",
        "Proxy -> Policies",
        "Proxy -> Telemetry",
        "Relay -> AccessLogging",
        "Relay -> Configuration",
        "Relay -> Handshake",
        "Relay -> Http",
        "Relay -> Listeners",
        "Relay -> LoadBalancing",
        "Relay -> Metrics",
        "Relay -> Policies",
        "Relay -> Proxy",
        "Reload -> Configuration",
        "Reload -> Handshake",
        "Reload -> Lifecycle",
        "Reload -> Metrics",
        "Reload -> Policies",
        "Reload -> Proxy",
        "Reload -> Warmup",
        "Telemetry -> Configuration",
        "Telemetry -> Handshake",
        "Telemetry -> Metrics",
        "Tls -> Configuration",
        "Tls -> Metrics",
        "Warmup -> Admin",
        "Warmup -> Configuration",
        "Warmup -> Lifecycle",
        "Warmup -> Listeners",
        "Warmup -> Metrics",
        "Warmup -> Policies",
    ];

    [Fact]
    public void No_folder_references_another_that_the_list_does_not_know()
    {
        var unknown = Actual().Keys.Except(Known).Order().ToArray();
        Assert.True(unknown.Length == 0,
            "new references between capability folders (break the cycle instead, or argue for the edge and add it to Known): "
            + string.Join(", ", unknown.Select(edge => $"{edge} ({string.Join(", ", Actual()[edge].Take(3))})")));
    }

    [Fact]
    public void The_list_holds_no_reference_that_is_gone()
    {
        var gone = Known.Except(Actual().Keys).Order().ToArray();
        Assert.True(gone.Length == 0, "references no longer in the code; take them off Known: " + string.Join(", ", gone));
    }

    [Fact]
    public void The_shared_leaves_depend_on_no_capability()
    {
        // Metrics and HTTP syntax are leaves every capability may use; they use none.
        var leaves = new[] { "Metrics", "Http" };
        var offending = Actual().Keys.Where(edge => leaves.Contains(edge.Split(" -> ")[0])).ToArray();
        Assert.Empty(offending);
    }

    [Fact]
    public void No_folder_reaches_itself_through_others()
    {
        // The design's folder rule: the references form no cycle, however long.
        var edges = Actual().Keys.Select(edge => edge.Split(" -> ")).ToLookup(pair => pair[0], pair => pair[1]);
        var done = new HashSet<string>();
        var path = new List<string>();
        string? Cycle(string folder)
        {
            if (path.Contains(folder))
            {
                return string.Join(" -> ", path.SkipWhile(f => f != folder).Append(folder));
            }
            if (!done.Add(folder))
            {
                return null;
            }
            path.Add(folder);
            var found = edges[folder].Select(Cycle).FirstOrDefault(cycle => cycle is not null);
            path.RemoveAt(path.Count - 1);
            return found;
        }
        var cycle = edges.Select(group => group.Key).Select(Cycle).FirstOrDefault(c => c is not null);
        Assert.True(cycle is null, $"a cycle between folders: {cycle}");
    }

    [Fact]
    public void Configuration_depends_on_no_capability()
    {
        // As in YARP: the option types and their checks use only the shared leaves; what a capability must judge is
        // judged by GatewayConfiguration, outside every folder.
        var offending = Actual().Keys.Where(edge => edge.StartsWith("Configuration -> ", StringComparison.Ordinal)
            && edge is not ("Configuration -> Http" or "Configuration -> Metrics")).ToArray();
        Assert.Empty(offending);
    }

    [Fact]
    public void The_scan_sees_references_in_code_and_ignores_them_in_comments_and_strings()
    {
        var found = References("""
            using Gateway.Relay;
            // using Gateway.Admin;
            /* Gateway.Lifecycle.Drain */
            var text = "Gateway.Tls.Store";
            var x = Gateway.Metrics.GatewayMeter.Name;
            var y = Proxy.SourceAddresses.Validate(options.Telemetry.Otlp);
            """, new HashSet<string> { "Admin", "Lifecycle", "Metrics", "Proxy", "Relay", "Telemetry", "Tls" });
        Assert.Equal(["Metrics", "Proxy", "Relay"], found.Order());
    }

    private static Dictionary<string, List<string>>? _actual;

    /// <summary>"From -> To" for every pair of folders under src/Gateway, with the files that make the reference.</summary>
    private static Dictionary<string, List<string>> Actual()
    {
        if (_actual is not null)
        {
            return _actual;
        }
        var source = Path.Combine(RepositoryRoot(), "src", "Gateway");
        var folders = Directory.GetDirectories(source).Select(path => Path.GetFileName(path)).Where(name => name is not ("obj" or "bin")).ToHashSet();
        var edges = new Dictionary<string, List<string>>();
        foreach (var folder in folders)
        {
            foreach (var file in Directory.EnumerateFiles(Path.Combine(source, folder), "*.cs", SearchOption.AllDirectories))
            {
                foreach (var target in References(File.ReadAllText(file), folders))
                {
                    if (target != folder && folders.Contains(target))
                    {
                        var edge = $"{folder} -> {target}";
                        if (!edges.TryGetValue(edge, out var files))
                        {
                            edges[edge] = files = [];
                        }
                        files.Add(Path.GetFileName(file));
                    }
                }
            }
        }
        return _actual = edges;
    }

    /// <summary>The gateway namespaces a source text refers to, comments and string literals removed first.</summary>
    private static HashSet<string> References(string text, IReadOnlySet<string> folders)
    {
        var code = CommentsAndStrings().Replace(text, " ");
        return QualifiedName().Matches(code).Concat(PartlyQualifiedName().Matches(code))
            .Select(match => match.Groups[1].Value)
            .Where(folders.Contains)
            .ToHashSet();
    }

    private static string RepositoryRoot()
    {
        for (var directory = new DirectoryInfo(AppContext.BaseDirectory); directory is not null; directory = directory.Parent)
        {
            if (File.Exists(Path.Combine(directory.FullName, "Gateway.sln")))
            {
                return directory.FullName;
            }
        }
        throw new InvalidOperationException("Gateway.sln not found above " + AppContext.BaseDirectory);
    }

    // Line and block comments, verbatim/raw/regular strings and char literals (good enough for this code base's style).
    [GeneratedRegex(@"//[^\n]*|/\*.*?\*/|""""""[\s\S]*?""""""|@""(?:[^""]|"""")*""|""(?:[^""\\\n]|\\.)*""|'(?:[^'\\\n]|\\.)+'", RegexOptions.Singleline)]
    private static partial Regex CommentsAndStrings();

    [GeneratedRegex(@"\bGateway\.([A-Z]\w*)\b")]
    private static partial Regex QualifiedName();

    // "Proxy.SourceAddresses" but not "options.Telemetry": a folder's name at the start of a member access.
    [GeneratedRegex(@"(?<![.\w])([A-Z]\w*)\.[A-Z]")]
    private static partial Regex PartlyQualifiedName();
}
