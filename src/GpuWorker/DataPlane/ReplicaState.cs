using System.Collections.Concurrent;
using System.Collections.Frozen;
using Lepton.GpuWorker.Routing;
using Lepton.Shared.Lifecycle;
using Lepton.Shared.Registry;

namespace Lepton.GpuWorker.DataPlane;

/// <summary>What the registry said about a version when this replica last looked.</summary>
public sealed record KnownVersion(Stage Stage, string Reason, DateTimeOffset Updated);

/// <summary>
/// What this replica currently believes and applies, shared between the background loops that
/// update it and the request path that reads it: the stored routes, the route tables in force
/// (published as one immutable snapshot, so a request never sees half an update), the versions the
/// registry knows, and whether the replica is synced or draining.
/// </summary>
public sealed class ReplicaState
{
    private volatile FrozenDictionary<string, RouteTable> _tables = FrozenDictionary<string, RouteTable>.Empty;
    private volatile bool _synced;
    private volatile bool _warm;
    private volatile bool _draining;

    /// <summary>The stored routes of each followed model.</summary>
    public ConcurrentDictionary<string, Routes> Stored { get; } = new(StringComparer.Ordinal);

    /// <summary>Each followed model's versions as the registry last reported them.</summary>
    public ConcurrentDictionary<(string Model, string Version), KnownVersion> Versions { get; } = new();

    /// <summary>The most recently superseded version of each model: what a rollback after promotion goes back to.</summary>
    public ConcurrentDictionary<string, string> LastKnownGood { get; } = new(StringComparer.Ordinal);

    public IReadOnlyDictionary<string, RouteTable> Tables => _tables;

    /// <summary>
    /// Ready once the first sync with the registry is done and the versions its routes serve are
    /// warm (or could not be loaded, for a reason the data plane gives), until draining starts. A
    /// replica that joins or restarts during a rollout is therefore not sent traffic it would answer
    /// 503 "no ready version yet"; once warm it stays ready while later versions load.
    /// </summary>
    public bool Ready => _synced && _warm && !_draining;

    public bool Synced => _synced;

    /// <summary>The routed versions of the first sync have settled (ready, or failed with a reason).</summary>
    public bool Warm => _warm;

    public bool Draining => _draining;

    public void MarkSynced() => _synced = true;

    public void MarkWarm() => _warm = true;

    public void StartDraining() => _draining = true;

    public RouteTable? Table(string model) => _tables.GetValueOrDefault(model);

    /// <summary>Publishes new tables for some models, keeping the others (one atomic swap).</summary>
    public void Publish(IEnumerable<RouteTable> tables, IEnumerable<string>? removed = null)
    {
        lock (Stored)
        {
            var next = new Dictionary<string, RouteTable>(_tables, StringComparer.Ordinal);
            foreach (var table in tables)
            {
                next[table.Model] = table;
            }
            foreach (var model in removed ?? [])
            {
                next.Remove(model);
            }
            _tables = next.ToFrozenDictionary(StringComparer.Ordinal);
        }
    }
}
