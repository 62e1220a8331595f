using Azure;
using Azure.Data.Tables;
using Lepton.Shared.Storage;

namespace Lepton.Shared.Metrics;

/// <summary>Which route generations a read of rollups keeps: the listed ones, or every one below a generation.</summary>
public sealed record GenerationSelection
{
    public IReadOnlyList<long> Only { get; init; } = [];

    public long? Below { get; init; }

    /// <summary>Rows recorded under exactly these generations (a step's own traffic).</summary>
    public static GenerationSelection Of(params IReadOnlyList<long> generations) => new() { Only = generations };

    /// <summary>Rows recorded under any generation before <paramref name="generation"/> (traffic before a switch).</summary>
    public static GenerationSelection Before(long generation) => new() { Below = generation };

    public bool Includes(long generation) => Only.Count > 0 ? Only.Contains(generation) : Below is not { } below || generation < below;

    /// <summary>The server-side filter (rows without a generation match none).</summary>
    internal string Filter() => Only.Count > 0
        ? "(" + string.Join(" or ", Only.Distinct().Select(g => TableClient.CreateQueryFilter($"RouteGeneration eq {g}"))) + ")"
        : Below is { } below ? TableClient.CreateQueryFilter($"RouteGeneration lt {below}") : "";
}

/// <summary>
/// Per-window metric rollups in the <c>metrics</c> table: one row per (model, window, version,
/// replica, route generation), PartitionKey = model. A replica upserts its row for the current
/// window as it accumulates (idempotent, off the request path); the lifecycle sums the rows of a
/// step's route generation across replicas and windows; a timer deletes windows older than the
/// retention.
/// </summary>
public sealed class MetricsStore(StorageClients storage)
{
    // Most operations one entity-group transaction may carry (Azure Table storage's limit).
    private const int MaxBatch = 100;

    private readonly TableClient _table = storage.Table(StorageLayout.MetricsTable);

    // The window first, so time ranges are key ranges (reads and retention); the generation last,
    // so a window in which the routes changed keeps one row per generation it served.
    private static string RowKey(WindowRollup rollup) =>
        $"{rollup.WindowStart:D12}!{SemVer.Parse(rollup.Version).SortKey}!{rollup.Replica}!g{rollup.RouteGeneration:D12}";

    /// <summary>Upserts one replica's rollup for one window (safe to repeat: the last write wins).</summary>
    public async Task WriteAsync(WindowRollup rollup, CancellationToken cancellationToken = default) =>
        await _table.UpsertEntityAsync(Entity(rollup), TableUpdateMode.Replace, cancellationToken);

    /// <summary>
    /// Upserts up to <see cref="MaxBatch"/> rollups of one model in one entity-group transaction (all
    /// or none), so a backlog kept through a storage outage goes out in a few requests.
    /// </summary>
    public async Task WriteBatchAsync(IReadOnlyList<WindowRollup> rollups, CancellationToken cancellationToken = default)
    {
        if (rollups.Count == 0)
        {
            return;
        }
        if (rollups.Count == 1)
        {
            await WriteAsync(rollups[0], cancellationToken);
            return;
        }
        if (rollups.Count > MaxBatch || rollups.Any(r => r.Model != rollups[0].Model))
        {
            throw new ArgumentException($"one batch holds at most {MaxBatch} rollups of one model", nameof(rollups));
        }
        await _table.SubmitTransactionAsync(rollups.Select(r => new TableTransactionAction(TableTransactionActionType.UpsertReplace, Entity(r))), cancellationToken);
    }

    /// <summary>The most rollups <see cref="WriteBatchAsync"/> takes at once (Azure Table storage's transaction limit).</summary>
    public static int BatchLimit => MaxBatch;

    private static TableEntity Entity(WindowRollup rollup)
    {
        ModelName.Validate(rollup.Model);
        return new TableEntity(rollup.Model, RowKey(rollup))
        {
            ["Version"] = rollup.Version,
            ["Replica"] = rollup.Replica,
            ["WindowStart"] = rollup.WindowStart,
            ["RouteGeneration"] = rollup.RouteGeneration,
            ["Data"] = LeptonJson.Serialize(rollup),
        };
    }

    /// <summary>
    /// Every row of <paramref name="model"/> whose window starts in [<paramref name="start"/>,
    /// <paramref name="end"/>) (unix seconds), only those of <paramref name="generations"/> when given.
    /// </summary>
    public async Task<IReadOnlyList<WindowRollup>> ReadAsync(
        string model, long start, long end, GenerationSelection? generations, CancellationToken cancellationToken = default) =>
        (await ReadStoredAsync(model, start, end, generations, cancellationToken)).Select(r => r.Rollup).ToList();

    /// <summary>Every row of <paramref name="model"/> whose window starts in [<paramref name="start"/>, <paramref name="end"/>), any generation.</summary>
    public Task<IReadOnlyList<WindowRollup>> ReadAsync(string model, long start, long end, CancellationToken cancellationToken = default) =>
        ReadAsync(model, start, end, null, cancellationToken);

    /// <summary>Like <see cref="ReadAsync(string, long, long, GenerationSelection?, CancellationToken)"/>, with the time each row was last written (the server's timestamp).</summary>
    public async Task<IReadOnlyList<StoredRollup>> ReadStoredAsync(
        string model, long start, long end, GenerationSelection? generations, CancellationToken cancellationToken = default)
    {
        ModelName.Validate(model);
        var low = start.ToString("D12", System.Globalization.CultureInfo.InvariantCulture);
        var high = end.ToString("D12", System.Globalization.CultureInfo.InvariantCulture);
        var filter = TableClient.CreateQueryFilter($"PartitionKey eq {model} and RowKey ge {low} and RowKey lt {high}");
        if (generations?.Filter() is { Length: > 0 } only)
        {
            filter = $"{filter} and {only}";
        }
        var rows = new List<StoredRollup>();
        await foreach (var entity in _table.QueryAsync<TableEntity>(filter, cancellationToken: cancellationToken))
        {
            rows.Add(new StoredRollup(LeptonJson.Deserialize<WindowRollup>(entity.GetString("Data")), entity.Timestamp ?? DateTimeOffset.MinValue));
        }
        return rows;
    }

    /// <summary>Rollups of [<paramref name="start"/>, <paramref name="end"/>) (of <paramref name="generations"/> when given) summed over replicas and windows, per version.</summary>
    public async Task<IReadOnlyDictionary<string, WindowRollup>> TotalsAsync(
        string model, long start, long end, GenerationSelection? generations, CancellationToken cancellationToken = default) =>
        Totals(await ReadAsync(model, start, end, generations, cancellationToken));

    /// <summary>Rollups of [<paramref name="start"/>, <paramref name="end"/>), any generation, summed over replicas and windows, per version.</summary>
    public Task<IReadOnlyDictionary<string, WindowRollup>> TotalsAsync(string model, long start, long end, CancellationToken cancellationToken = default) =>
        TotalsAsync(model, start, end, null, cancellationToken);

    /// <summary><paramref name="rows"/> summed per version.</summary>
    public static IReadOnlyDictionary<string, WindowRollup> Totals(IEnumerable<WindowRollup> rows)
    {
        var totals = new Dictionary<string, WindowRollup>(StringComparer.Ordinal);
        foreach (var row in rows)
        {
            totals[row.Version] = totals.TryGetValue(row.Version, out var sum) ? sum.Merge(row) : row;
        }
        return totals;
    }

    /// <summary>Deletes the windows of <paramref name="model"/> that started before <paramref name="cutoff"/>; returns how many rows went.</summary>
    public async Task<int> DeleteOlderThanAsync(string model, long cutoff, CancellationToken cancellationToken = default)
    {
        ModelName.Validate(model);
        var high = cutoff.ToString("D12", System.Globalization.CultureInfo.InvariantCulture);
        var filter = TableClient.CreateQueryFilter($"PartitionKey eq {model} and RowKey lt {high}");
        var deleted = 0;
        var batch = new List<TableEntity>(MaxBatch);
        // One partition per model, so rows go in entity-group transactions: an hour of rollups from
        // many replicas is a few requests, not one per row. Deleting while paging is safe: the
        // continuation token names the next key, not an offset.
        await foreach (var entity in _table.QueryAsync<TableEntity>(filter, select: ["PartitionKey", "RowKey"], cancellationToken: cancellationToken))
        {
            batch.Add(entity);
            if (batch.Count == MaxBatch)
            {
                deleted += await DeleteBatchAsync(batch, cancellationToken);
                batch.Clear();
            }
        }
        if (batch.Count > 0)
        {
            deleted += await DeleteBatchAsync(batch, cancellationToken);
        }
        return deleted;
    }

    /// <summary>Deletes every model's windows older than <paramref name="retention"/>; returns the rows deleted per model.</summary>
    public async Task<IReadOnlyDictionary<string, int>> ExpireAsync(
        IEnumerable<string> models, DateTimeOffset now, TimeSpan retention, CancellationToken cancellationToken = default)
    {
        var cutoff = (now - retention).ToUnixTimeSeconds();
        var deleted = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (var model in models)
        {
            var count = await DeleteOlderThanAsync(model, cutoff, cancellationToken);
            if (count > 0)
            {
                deleted[model] = count;
            }
        }
        return deleted;
    }

    private async Task<int> DeleteBatchAsync(List<TableEntity> rows, CancellationToken cancellationToken)
    {
        try
        {
            await _table.SubmitTransactionAsync(rows.Select(r => new TableTransactionAction(TableTransactionActionType.Delete, r, ETag.All)), cancellationToken);
        }
        catch (TableTransactionFailedException)
        {
            // A row went in between (a concurrent pruner): a transaction is all or nothing, so
            // delete one by one; deleting a missing entity is not an error.
            foreach (var row in rows)
            {
                await _table.DeleteEntityAsync(row.PartitionKey, row.RowKey, ETag.All, cancellationToken);
            }
        }
        return rows.Count;
    }
}

/// <summary>A rollup row and when its replica last wrote it (the table's timestamp).</summary>
public sealed record StoredRollup(WindowRollup Rollup, DateTimeOffset Written);
