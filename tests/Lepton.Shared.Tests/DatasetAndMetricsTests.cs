using System.IO.Compression;
using System.Text;
using Lepton.Shared.Configuration;
using Lepton.Shared.Metrics;
using Lepton.Shared.Models;
using Lepton.Shared.Workers;
using Lepton.Testing;

namespace Lepton.Shared.Tests;

public sealed class DatasetTests(AzuriteFixture azurite)
{
    private static CancellationToken Token => TestContext.Current.CancellationToken;

    /// <summary>An .npz archive byte for byte as numpy's savez_compressed writes it (format 1.0).</summary>
    private static byte[] NumpyNpz(params (string Name, string Descr, string Shape, byte[] Data)[] arrays)
    {
        using var buffer = new MemoryStream();
        using (var zip = new ZipArchive(buffer, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var (name, descr, shape, data) in arrays)
            {
                var header = $"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}";
                var unpadded = 10 + header.Length + 1;
                header = header.PadRight(header.Length + ((64 - (unpadded % 64)) % 64)) + "\n";
                using var entry = zip.CreateEntry(name + ".npy", CompressionLevel.Optimal).Open();
                entry.Write([0x93, .. "NUMPY"u8, 1, 0]);
                entry.Write(BitConverter.GetBytes((ushort)header.Length));
                entry.Write(Encoding.ASCII.GetBytes(header));
                entry.Write(data);
            }
        }
        return buffer.ToArray();
    }

    private static byte[] Floats(params float[] values) => values.SelectMany(BitConverter.GetBytes).ToArray();

    private static byte[] Longs(params long[] values) => values.SelectMany(BitConverter.GetBytes).ToArray();

    [Fact]
    public void Reads_an_archive_in_numpys_own_format()
    {
        var npz = NumpyNpz(("X", "<f4", "(3, 2)", Floats(1, 2, 3, 4, 5, 6)), ("y", "<i8", "(3,)", Longs(0, 1, 1)));
        var dataset = NpzDatasets.Read(new MemoryStream(npz), "datasets/m/d.npz").Validate("d");
        Assert.Equal("float32", dataset.X.Dtype);
        Assert.Equal([3L, 2L], dataset.X.Shape);
        Assert.Equal(2, dataset.X.RowSize);
        Assert.Equal([1f, 2, 3, 4, 5, 6], dataset.X.ToSingles());
        Assert.Equal([0L, 1, 1], dataset.Y.ToInt64s());
    }

    [Fact]
    public void Refuses_object_arrays_without_running_anything()
    {
        // A pickled object array: with allow_pickle off it must be refused, never unpickled.
        var npz = NumpyNpz(("X", "|O", "(1,)", [0x80, 0x04, 0x95, 0x00]), ("y", "<i8", "(1,)", Longs(0)));
        var error = Assert.Throws<InvalidDatasetException>(() => NpzDatasets.Read(new MemoryStream(npz), "datasets/m/d.npz"));
        Assert.Contains("datasets/m/d.npz", error.Message);
        Assert.DoesNotContain(Path.GetTempPath(), error.Message);
    }

    [Theory]
    [InlineData("missing")]
    [InlineData("rows")]
    [InlineData("garbage")]
    public void Refuses_archives_that_are_not_an_x_and_y_dataset(string kind)
    {
        var npz = kind switch
        {
            "missing" => NumpyNpz(("X", "<f4", "(1,)", Floats(1))),
            "rows" => NumpyNpz(("X", "<f4", "(2, 1)", Floats(1, 2)), ("y", "<i8", "(3,)", Longs(0, 1, 2))),
            _ => "not a zip at all"u8.ToArray(),
        };
        var error = Assert.Throws<InvalidDatasetException>(() => NpzDatasets.Read(new MemoryStream(npz), "datasets/m/d.npz").Validate("d"));
        Assert.Contains(kind == "rows" ? "X has 2 rows but y has 3" : kind == "missing" ? "must hold arrays 'X' and 'y'" : "not a valid .npz", error.Message);
    }

    [Fact(Timeout = 60_000)]
    public async Task Round_trips_through_blob_storage()
    {
        var ct = TestContext.Current.CancellationToken;
        var store = new ModelStore(azurite.Clients, new ModelStoreOptions());
        var model = TestNames.Model();
        var dataset = new Dataset(NumericArray.FromSingles([0.5f, 1.5f, 2.5f, 3.5f], 2, 2), NumericArray.FromInt64s([1, 0], 2));
        await store.PutDatasetAsync(model, "digits", dataset, ct);
        var read = await store.GetDatasetAsync(model, "digits", ct);
        Assert.Equal(dataset.X.Values, read.X.Values);
        Assert.Equal(dataset.X.Shape, read.X.Shape);
        Assert.Equal("int64", read.Y.Dtype);
        var missing = await Assert.ThrowsAsync<BlobNotFoundException>(() => store.GetDatasetAsync(model, "other", ct));
        Assert.Contains("lepton push", missing.Message);
        await Assert.ThrowsAsync<InvalidDatasetException>(() => store.PutDatasetFileAsync(model, "bad", "nope"u8.ToArray(), ct));
    }
}

public sealed class MetricsStoreTests(AzuriteFixture azurite)
{
    private readonly MetricsStore _metrics = new(azurite.Clients);
    private readonly string _model = TestNames.Model();

    private static CancellationToken Token => TestContext.Current.CancellationToken;

    private WindowRollup Rollup(string version, string replica, long start, long requests, long errors)
    {
        var buckets = new long[LatencyHistogram.Count];
        buckets[LatencyHistogram.IndexOf(2.5)] = requests;
        return new WindowRollup
        {
            Model = _model,
            Version = version,
            Replica = replica,
            WindowStart = start,
            WindowSeconds = 10,
            Requests = requests,
            RoutedRequests = requests,
            Errors = errors,
            Rows = requests,
            LatencyBuckets = buckets,
            PairedLatencyDiffMs = [0.5],
        };
    }

    [Fact(Timeout = 60_000)]
    public async Task Totals_sum_over_replicas_and_windows_per_version()
    {
        var ct = TestContext.Current.CancellationToken;
        await _metrics.WriteAsync(Rollup("1.0.0", "a", 1000, 100, 1), ct);
        await _metrics.WriteAsync(Rollup("1.0.0", "b", 1000, 50, 2), ct);
        await _metrics.WriteAsync(Rollup("1.0.0", "a", 1010, 10, 0), ct);
        await _metrics.WriteAsync(Rollup("1.1.0", "a", 1010, 7, 7), ct);
        await _metrics.WriteAsync(Rollup("1.0.0", "a", 1020, 999, 0), ct); // outside the range
        await _metrics.WriteAsync(Rollup("1.0.0", "a", 1000, 100, 1), ct); // a repeat write replaces
        var totals = await _metrics.TotalsAsync(_model, 1000, 1020, ct);
        Assert.Equal(160, totals["1.0.0"].Requests);
        Assert.Equal(3, totals["1.0.0"].Errors);
        Assert.Equal(160, totals["1.0.0"].LatencyBuckets[LatencyHistogram.IndexOf(2.5)]);
        Assert.Equal("*", totals["1.0.0"].Replica);
        Assert.Equal(3, totals["1.0.0"].PairedLatencyDiffMs.Length);
        Assert.Equal(7, totals["1.1.0"].Errors);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_window_keeps_one_row_per_route_generation_and_a_read_selects_generations()
    {
        var ct = TestContext.Current.CancellationToken;
        // The window in which the routes changed: generation 4 (the old weight) and 5 (the new one).
        await _metrics.WriteAsync(Rollup("1.0.1", "a", 1000, 30, 0) with { RouteGeneration = 4 }, ct);
        await _metrics.WriteAsync(Rollup("1.0.1", "a", 1000, 70, 7) with { RouteGeneration = 5 }, ct);
        await _metrics.WriteAsync(Rollup("1.0.1", "b", 1010, 10, 0) with { RouteGeneration = 5 }, ct);
        await _metrics.WriteAsync(Rollup("1.0.1", "b", 1010, 1, 0) with { RouteGeneration = 3 }, ct);

        Assert.Equal(4, (await _metrics.ReadAsync(_model, 1000, 1020, ct)).Count);
        var step = await _metrics.TotalsAsync(_model, 1000, 1020, GenerationSelection.Of(5), ct);
        Assert.Equal((80L, 7L, 5L), (step["1.0.1"].Requests, step["1.0.1"].Errors, step["1.0.1"].RouteGeneration));
        var earlier = await _metrics.TotalsAsync(_model, 1000, 1020, GenerationSelection.Of(3, 4), ct);
        Assert.Equal(31, earlier["1.0.1"].Requests);
        Assert.Equal(31, (await _metrics.TotalsAsync(_model, 1000, 1020, GenerationSelection.Before(5), ct))["1.0.1"].Requests);
        var stored = await _metrics.ReadStoredAsync(_model, 1000, 1020, GenerationSelection.Of(5), ct);
        Assert.All(stored, r => Assert.True(DateTimeOffset.UtcNow - r.Written < TimeSpan.FromMinutes(5), "the row's write time is the table's timestamp"));
    }

    [Fact(Timeout = 60_000)]
    public async Task Expiry_deletes_only_windows_older_than_the_retention()
    {
        var ct = TestContext.Current.CancellationToken;
        for (var i = 0; i < 130; i++)
        {
            await _metrics.WriteAsync(Rollup("1.0.0", $"r{i}", 1000, 1, 0), ct);
        }
        await _metrics.WriteAsync(Rollup("1.0.0", "a", 5000, 1, 0), ct);
        var deleted = await _metrics.ExpireAsync([_model], DateTimeOffset.FromUnixTimeSeconds(5000 + 3600), TimeSpan.FromHours(1), ct);
        Assert.Equal(130, deleted[_model]);
        var left = await _metrics.ReadAsync(_model, 0, 10_000, ct);
        Assert.Equal(5000, Assert.Single(left).WindowStart);
    }

    [Fact]
    public void Latency_buckets_are_the_references_bounds()
    {
        Assert.Equal(0, LatencyHistogram.IndexOf(0.1));
        Assert.Equal(1, LatencyHistogram.IndexOf(0.5));
        Assert.Equal(LatencyHistogram.Count - 2, LatencyHistogram.IndexOf(5000));
        Assert.Equal(LatencyHistogram.Count - 1, LatencyHistogram.IndexOf(5000.1));
    }
}

public sealed class WorkerDirectoryTests(AzuriteFixture azurite)
{
    [Fact(Timeout = 60_000)]
    public async Task Warm_status_counts_only_live_replicas_that_serve_the_model_and_are_not_draining()
    {
        // The workers table holds every test's replicas, so each replica name is unique here and
        // the assertions look only at this test's replicas.
        var directory = new WorkerDirectory(azurite.Clients);
        var model = TestNames.Model();
        var now = DateTimeOffset.UtcNow;
        var ready = new Dictionary<string, IReadOnlyList<string>> { [model] = ["1.0.0"] };
        var none = new Dictionary<string, IReadOnlyList<string>>();
        var token = TestContext.Current.CancellationToken;
        await directory.BeatAsync(new Heartbeat { Replica = model + "-a", Url = "http://a", Provider = "CPUExecutionProvider", At = now, Ready = ready }, token);
        var follows = new Dictionary<string, long> { [model] = 3 };
        await directory.BeatAsync(new Heartbeat { Replica = model + "-b", Url = "http://b", Provider = "CPUExecutionProvider", At = now, Ready = none, RouteGenerations = follows }, token);
        // Serves other models only: it never blocks this model's warm-up.
        var other = new Dictionary<string, long> { [model + "x"] = 1 };
        await directory.BeatAsync(new Heartbeat { Replica = model + "-other", Url = "http://e", Provider = "CPUExecutionProvider", At = now, Ready = none, RouteGenerations = other }, token);
        await directory.BeatAsync(new Heartbeat { Replica = model + "-old", Url = "http://c", Provider = "CPUExecutionProvider", At = now.AddMinutes(-5), Ready = none }, token);
        await directory.BeatAsync(new Heartbeat { Replica = model + "-drain", Url = "http://d", Provider = "CPUExecutionProvider", At = now, Ready = none, Draining = true }, token);
        var live = (await directory.LiveAsync(now, TimeSpan.FromSeconds(30), token)).Where(h => h.Replica.StartsWith(model, StringComparison.Ordinal)).ToList();
        Assert.Equal([model + "-a", model + "-b", model + "-other"], live.Select(h => h.Replica).Order());
        var status = await directory.WarmStatusAsync(model, "1.0.0", now, TimeSpan.FromSeconds(30), token);
        Assert.False(status.Ready);
        Assert.Contains(model + "-b", status.Missing);
        Assert.DoesNotContain(model + "-other", status.Missing);
        Assert.DoesNotContain(model + "-other", status.LiveReplicas);
        Assert.DoesNotContain(model + "-a", status.Missing);
        await directory.RemoveAsync(model + "-b", token);
        await directory.RemoveAsync(model + "-b", token); // removing twice is fine
        Assert.DoesNotContain(model + "-b", (await directory.WarmStatusAsync(model, "1.0.0", now, TimeSpan.FromSeconds(30), token)).Missing);
    }
}
