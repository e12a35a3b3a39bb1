using Yarp.ReverseProxy.Configuration;

namespace Gateway.Lifecycle;

/// <summary>What one applied configuration changed against the one before: routes, clusters and destinations.</summary>
internal sealed class ConfigChangeSummary
{
    public List<string> RoutesAdded { get; } = [];
    public List<string> RoutesRemoved { get; } = [];
    public List<string> RoutesChanged { get; } = [];
    public List<string> ClustersAdded { get; } = [];
    public List<string> ClustersRemoved { get; } = [];
    public List<string> ClustersChanged { get; } = [];

    /// <summary>Destinations that left, as (cluster, destination), with the cluster's config before the change.</summary>
    public List<(ClusterConfig Cluster, string Destination)> DestinationsRemoved { get; } = [];
    public List<(string Cluster, string Destination)> DestinationsAdded { get; } = [];

    public bool IsEmpty => RoutesAdded.Count + RoutesRemoved.Count + RoutesChanged.Count + ClustersAdded.Count
        + ClustersRemoved.Count + ClustersChanged.Count + DestinationsRemoved.Count + DestinationsAdded.Count == 0;

    public static ConfigChangeSummary Between(IReadOnlyList<IProxyConfig> before, IReadOnlyList<IProxyConfig> after)
    {
        var summary = new ConfigChangeSummary();
        var oldRoutes = before.SelectMany(c => c.Routes).ToDictionary(r => r.RouteId, StringComparer.OrdinalIgnoreCase);
        var newRoutes = after.SelectMany(c => c.Routes).ToDictionary(r => r.RouteId, StringComparer.OrdinalIgnoreCase);
        Compare(oldRoutes, newRoutes, summary.RoutesAdded, summary.RoutesRemoved, summary.RoutesChanged, (a, b) => a.Equals(b));

        var oldClusters = before.SelectMany(c => c.Clusters).ToDictionary(c => c.ClusterId, StringComparer.OrdinalIgnoreCase);
        var newClusters = after.SelectMany(c => c.Clusters).ToDictionary(c => c.ClusterId, StringComparer.OrdinalIgnoreCase);
        Compare(oldClusters, newClusters, summary.ClustersAdded, summary.ClustersRemoved, summary.ClustersChanged, (a, b) => a.Equals(b));

        foreach (var (id, cluster) in oldClusters)
        {
            newClusters.TryGetValue(id, out var now);
            foreach (var destination in cluster.Destinations?.Keys ?? Enumerable.Empty<string>())
            {
                if (now?.Destinations?.ContainsKey(destination) != true)
                {
                    summary.DestinationsRemoved.Add((cluster, destination));
                }
            }
        }
        foreach (var (id, cluster) in newClusters)
        {
            oldClusters.TryGetValue(id, out var was);
            foreach (var destination in cluster.Destinations?.Keys ?? Enumerable.Empty<string>())
            {
                if (was?.Destinations?.ContainsKey(destination) != true)
                {
                    summary.DestinationsAdded.Add((id, destination));
                }
            }
        }
        return summary;
    }

    /// <summary>One line for the log: only what changed.</summary>
    public override string ToString()
    {
        var parts = new List<string>();
        Add("routes added", RoutesAdded);
        Add("routes removed", RoutesRemoved);
        Add("routes changed", RoutesChanged);
        Add("clusters added", ClustersAdded);
        Add("clusters removed", ClustersRemoved);
        Add("clusters changed", ClustersChanged);
        Add("destinations added", DestinationsAdded.Select(d => $"{d.Cluster}/{d.Destination}").ToList());
        Add("destinations removed", DestinationsRemoved.Select(d => $"{d.Cluster.ClusterId}/{d.Destination}").ToList());
        return parts.Count == 0 ? "no route, cluster or destination changed" : string.Join("; ", parts);

        void Add(string what, List<string> names)
        {
            if (names.Count > 0)
            {
                parts.Add($"{what}: {string.Join(", ", names)}");
            }
        }
    }

    private static void Compare<T>(Dictionary<string, T> before, Dictionary<string, T> after, List<string> added, List<string> removed,
        List<string> changed, Func<T, T, bool> same)
    {
        foreach (var (id, value) in after)
        {
            if (!before.TryGetValue(id, out var was))
            {
                added.Add(id);
            }
            else if (!same(was, value))
            {
                changed.Add(id);
            }
        }
        removed.AddRange(before.Keys.Where(id => !after.ContainsKey(id)));
    }
}
