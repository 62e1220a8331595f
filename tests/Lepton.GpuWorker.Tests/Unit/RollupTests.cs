using Lepton.GpuWorker.Observability;
using Lepton.GpuWorker.Serving;
using Lepton.GpuWorker.Tensors;
using Lepton.Shared.Metrics;
using Microsoft.Extensions.Time.Testing;

namespace Lepton.GpuWorker.Tests.Unit;

/// <summary>Window rollups: aligned windows, every field filled, bounded paired samples, scores.</summary>
public sealed class RollupTests
{
    private static TensorData Probabilities(params float[][] rows)
    {
        var tensor = TensorData.Numeric(DataType.Fp32, [rows.Length, rows[0].Length], rows.Length * rows[0].Length);
        rows.SelectMany(r => r).ToArray().CopyTo(tensor.As<float>());
        return tensor;
    }

    [Fact]
    public void Windows_are_aligned_and_fields_add_up()
    {
        var time = new FakeTimeProvider(DateTimeOffset.FromUnixTimeMilliseconds(1_000_007_500));
        var recorder = new RollupRecorder("r1", 10, time);
        using var scores = Probabilities([0.95f, 0.05f], [0.5f, 0.5f], [0f, 1f]);
        recorder.Record("m", "1.0.0", routeGeneration: 7, routed: true, error: false, nonfinite: false, rows: 3, latencyMs: 4, computeMs: 1.5, scores);
        recorder.Record("m", "1.0.0", routeGeneration: 7, routed: false, error: true, nonfinite: true, rows: 1, latencyMs: 40, computeMs: 0, null);
        var row = Assert.Single(recorder.TakeDirty());
        Assert.Equal((1_000_000L, 10, "r1", 7L), (row.WindowStart, row.WindowSeconds, row.Replica, row.RouteGeneration));
        Assert.Equal((2L, 1L, 1L, 1L, 4L), (row.Requests, row.RoutedRequests, row.Errors, row.Nonfinite, row.Rows));
        Assert.Equal(44.0, row.LatencySumMs);
        Assert.Equal(1.5, row.ComputeMs);
        Assert.Equal(1, row.LatencyBuckets[LatencyHistogram.IndexOf(4)]);
        Assert.Equal(1, row.LatencyBuckets[LatencyHistogram.IndexOf(40)]);
        Assert.Equal(2, row.LatencyBuckets.Sum());
        Assert.Equal(1, row.ScoreBinCounts[5]);
        Assert.Equal(2, row.ScoreBinCounts[WindowRollup.ScoreBins - 1]);
        Assert.Empty(recorder.TakeDirty()); // nothing changed since
        time.Advance(TimeSpan.FromSeconds(10));
        recorder.Record("m", "1.0.0", 7, true, false, false, 1, 1, 0, null);
        var later = Assert.Single(recorder.TakeDirty());
        Assert.Equal((1_000_010L, 1L), (later.WindowStart, later.Requests));
    }

    [Fact]
    public void Shadow_pairs_keep_a_bounded_uniform_sample_of_latency_differences()
    {
        var recorder = new RollupRecorder("r1", 10, new FakeTimeProvider(DateTimeOffset.FromUnixTimeSeconds(50)), new Random(1));
        var n = WindowRollup.MaxPairedSamples * 4;
        for (var i = 0; i < n; i++)
        {
            recorder.RecordShadowPair("m", "1.1.0", routeGeneration: 3, flipped: i % 4 == 0, latencyDiffMs: i);
        }
        var row = Assert.Single(recorder.TakeDirty());
        Assert.Equal((long)n, row.ShadowPairs);
        Assert.Equal(n / 4, row.ShadowFlips);
        Assert.Equal(WindowRollup.MaxPairedSamples, row.PairedLatencyDiffMs.Length);
        // A uniform sample of 0..n-1 has its mean near n/2, not at the first values kept.
        Assert.InRange(row.PairedLatencyDiffMs.Average(), n / 2.0 - (n / 8.0), n / 2.0 + (n / 8.0));
    }

    [Fact]
    public void Unwritten_snapshots_are_retried_at_the_next_flush()
    {
        var recorder = new RollupRecorder("r1", 10, new FakeTimeProvider(DateTimeOffset.FromUnixTimeSeconds(100)));
        recorder.Record("m", "1.0.0", 1, true, false, false, 1, 1, 0, null);
        var taken = recorder.TakeDirty();
        recorder.Restore(taken);
        Assert.Equal(taken.Single().Requests, Assert.Single(recorder.TakeDirty()).Requests);
    }

    [Fact]
    public void Beyond_the_bound_the_oldest_unwritten_windows_are_dropped_never_the_current_one()
    {
        var time = new FakeTimeProvider(DateTimeOffset.FromUnixTimeSeconds(1_000));
        var recorder = new RollupRecorder("r1", 10, time);
        // Storage is away: six windows of two versions pile up, none written.
        for (var window = 0; window < 6; window++)
        {
            recorder.Record("m", "1.0.0", 1, true, false, false, 1, 1, 0, null);
            recorder.Record("m", "1.1.0", 1, true, false, false, 1, 1, 0, null);
            recorder.Restore(recorder.TakeDirty());
            time.Advance(TimeSpan.FromSeconds(10));
        }
        recorder.Record("m", "1.0.0", 1, true, false, false, 1, 1, 0, null);
        Assert.Equal(13, recorder.Buffered);
        var dropped = recorder.DropOldest(4);
        Assert.Equal([1_000L, 1_000, 1_010, 1_010, 1_020, 1_020, 1_030, 1_030, 1_040], dropped);
        Assert.Equal(4, recorder.Buffered);
        Assert.Equal(
            [(1_040L, "1.1.0"), (1_050L, "1.0.0"), (1_050L, "1.1.0"), (1_060L, "1.0.0")],
            recorder.TakeDirty().Select(r => (r.WindowStart, r.Version)).Order());
        // The current window stays even when the bound is smaller than the windows in progress.
        recorder.Record("m", "1.1.0", 1, true, false, false, 1, 1, 0, null);
        Assert.Equal([1_040L, 1_050, 1_050], recorder.DropOldest(0));
        Assert.Equal(2, recorder.Buffered);
        Assert.Equal((1_060L, "1.1.0"), recorder.TakeDirty().Select(r => (r.WindowStart, r.Version)).Single());
    }

    [Fact]
    public void A_window_in_which_the_routes_changed_has_one_rollup_per_generation()
    {
        // The lifecycle judges a canary step on the rows of its own generation only: traffic routed
        // under the previous weight in the same window must not be mixed in.
        var recorder = new RollupRecorder("r1", 10, new FakeTimeProvider(DateTimeOffset.FromUnixTimeSeconds(1_000)));
        recorder.Record("m", "1.0.0", 4, true, false, false, 1, 1, 0, null);
        recorder.Record("m", "1.0.0", 4, true, false, false, 1, 1, 0, null);
        recorder.Record("m", "1.0.0", 5, true, true, false, 1, 1, 0, null);
        var rows = recorder.TakeDirty().OrderBy(r => r.RouteGeneration).ToList();
        Assert.Equal([(4L, 2L, 0L), (5L, 1L, 1L)], rows.Select(r => (r.RouteGeneration, r.Requests, r.Errors)));
        Assert.All(rows, r => Assert.Equal(1_000L, r.WindowStart));
        recorder.Restore(rows.Take(1));
        Assert.Equal(4L, Assert.Single(recorder.TakeDirty()).RouteGeneration);
    }

    [Fact]
    public void Scores_pick_the_probabilities_and_summarise_rows()
    {
        Assert.Equal(1, Scores.PickScoreOutput([new TensorSpec("label", DataType.Int64, [null]), new TensorSpec("probabilities", DataType.Fp32, [null, 2])]));
        Assert.Equal(1, Scores.PickScoreOutput([new TensorSpec("label", DataType.Int64, [null]), new TensorSpec("logits", DataType.Fp32, [null, 2])]));
        Assert.Equal(0, Scores.PickScoreOutput([new TensorSpec("output", DataType.Fp32, [null])]));
        using var probabilities = Probabilities([0.05f, 0.95f], [0.65f, 0.35f]);
        Assert.Equal([1.0, 0.0], Scores.Top1(probabilities));
        var bins = new long[WindowRollup.ScoreBins];
        Scores.AddToBins(probabilities, bins);
        Assert.Equal(1, bins[9]);
        Assert.Equal(1, bins[6]);
        using var values = TensorData.Numeric(DataType.Fp64, [4], 4);
        new[] { -3.0, 0.25, 7.0, double.NaN }.CopyTo(values.As<double>());
        bins = new long[WindowRollup.ScoreBins];
        Scores.AddToBins(values, bins);
        Assert.Equal(3, bins.Sum());
        Assert.Equal(1, bins[0]);
        Assert.Equal(1, bins[2]);
        Assert.Equal(1, bins[9]);
        Assert.True(Scores.HasNonFinite(values));
    }
}
