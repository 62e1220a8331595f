using Azure.Data.Tables;
using Lepton.Shared.Storage;

namespace Lepton.Shared.Workers;

/// <summary>One worker replica's last report: where it listens, its provider, what it has loaded and ready.</summary>
public sealed record Heartbeat
{
    public required string Replica { get; init; }

    public required string Url { get; init; }

    /// <summary><c>CUDAExecutionProvider</c> or <c>CPUExecutionProvider</c>.</summary>
    public required string Provider { get; init; }

    public required DateTimeOffset At { get; init; }

    /// <summary>gRPC endpoint, when the replica serves one.</summary>
    public string? GrpcUrl { get; init; }

    /// <summary>Model → versions loaded (a session exists).</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<string>> Loaded { get; init; } = new Dictionary<string, IReadOnlyList<string>>();

    /// <summary>Model → versions ready (warmed up, routable).</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<string>> Ready { get; init; } = new Dictionary<string, IReadOnlyList<string>>();

    /// <summary>Shutting down: no longer counts for warm-up quorum.</summary>
    public bool Draining { get; init; }

    /// <summary>The route generation per model this replica applies, so the lifecycle can tell a change reached it.</summary>
    public IReadOnlyDictionary<string, long> RouteGenerations { get; init; } = new Dictionary<string, long>();

    public bool IsReady(string model, string version) =>
        Ready.TryGetValue(model, out var versions) && versions.Contains(version);

    /// <summary>
    /// Whether this replica serves <paramref name="model"/> (it applies routes for it, or has a
    /// version of it loaded): a replica that serves other models only (<c>LEPTON_WORKER_MODELS</c>)
    /// neither blocks a warm-up nor owes a canary step any rollups.
    /// </summary>
    public bool Serves(string model) => RouteGenerations.ContainsKey(model) || Loaded.ContainsKey(model) || Ready.ContainsKey(model);
}

/// <summary>Whether every live replica has a version ready, and which are still missing it.</summary>
public sealed record WarmStatus(bool Ready, IReadOnlyList<string> LiveReplicas, IReadOnlyList<string> Missing);

/// <summary>
/// Worker replica heartbeats in the <c>workers</c> table (one row per replica). The lifecycle gives
/// a candidate traffic only once every live replica serving the model reports it ready; a replica
/// whose heartbeat is older than the liveness window, or that is draining, no longer counts.
/// </summary>
public sealed class WorkerDirectory(StorageClients storage)
{
    private const string Partition = "replica";

    private readonly TableClient _table = storage.Table(StorageLayout.WorkersTable);

    public async Task BeatAsync(Heartbeat heartbeat, CancellationToken cancellationToken = default)
    {
        var entity = new TableEntity(Partition, heartbeat.Replica) { ["Data"] = LeptonJson.Serialize(heartbeat) };
        await _table.UpsertEntityAsync(entity, TableUpdateMode.Replace, cancellationToken);
    }

    public async Task RemoveAsync(string replica, CancellationToken cancellationToken = default) =>
        await _table.DeleteEntityAsync(Partition, replica, Azure.ETag.All, cancellationToken);

    public async Task<IReadOnlyList<Heartbeat>> AllAsync(CancellationToken cancellationToken = default)
    {
        var beats = new List<Heartbeat>();
        var filter = TableClient.CreateQueryFilter($"PartitionKey eq {Partition}");
        await foreach (var entity in _table.QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken))
        {
            beats.Add(LeptonJson.Deserialize<Heartbeat>(entity.GetString("Data")));
        }
        return beats;
    }

    /// <summary>Replicas whose last heartbeat is within <paramref name="maxAge"/> of <paramref name="now"/> and that are not draining.</summary>
    public async Task<IReadOnlyList<Heartbeat>> LiveAsync(DateTimeOffset now, TimeSpan maxAge, CancellationToken cancellationToken = default) =>
        (await AllAsync(cancellationToken)).Where(h => now - h.At <= maxAge && !h.Draining).ToList();

    public async Task<WarmStatus> WarmStatusAsync(
        string model, string version, DateTimeOffset now, TimeSpan maxAge, CancellationToken cancellationToken = default)
    {
        var live = (await LiveAsync(now, maxAge, cancellationToken)).Where(h => h.Serves(model)).ToList();
        var missing = live.Where(h => !h.IsReady(model, version)).Select(h => h.Replica).Order(StringComparer.Ordinal).ToList();
        return new WarmStatus(live.Count > 0 && missing.Count == 0, live.Select(h => h.Replica).Order(StringComparer.Ordinal).ToList(), missing);
    }
}
