using Lepton.Cli.Samples;
using Lepton.Shared.Evaluation;
using Lepton.Shared.Models;
using Lepton.Shared.Policies;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Lepton.Shared.Tests.Evaluation;

/// <summary>Offline evaluation on real ONNX models: shard statistics, exact merging, metrics and the gate.</summary>
public sealed class EvaluationTests
{
    private static readonly (Dataset Train, Dataset Test) Digits = SampleDatasets.Digits();

    [Fact]
    public void Shard_bounds_cover_every_row_once()
    {
        Assert.Equal([(0L, 3L), (3L, 6L), (6L, 10L)], Enumerable.Range(0, 3).Select(i => Shards.Bounds(10, i, 3)));
        Assert.Throws<InvalidDatasetException>(() => Shards.Bounds(10, 3, 3));
    }

    [Fact]
    public void Sharded_evaluation_merges_to_the_single_pass_result()
    {
        var model = SampleDatasets.GoodClassifier(Digits.Train);
        var whole = ShardEvaluator.Evaluate(model, Digits.Test, ModelTask.Classification, 0, 1);
        var parts = Enumerable.Range(0, 3)
            .Select(i => LeptonJson.Deserialize<ShardResult>(LeptonJson.Serialize(ShardEvaluator.Evaluate(model, Digits.Test, ModelTask.Classification, i, 3))))
            .ToList();

        var merged = ShardResult.Merge(parts);

        Assert.Equal(whole.Confusion, merged.Confusion);
        Assert.Equal(Digits.Test.Y.Rows, merged.Rows);
        var summary = EvaluationSummary.Of(merged);
        // Checked independently: the share of rows where ONNX Runtime's label equals y.
        Assert.Equal(IndependentAccuracy(model, Digits.Test), summary.Accuracy!.Value, 10);
        Assert.True(summary.Accuracy > 0.9, $"accuracy {summary.Accuracy}");
        Assert.InRange(summary.F1Macro!.Value, 0.01, 1);
        Assert.InRange(summary.PrecisionMacro!.Value, 0.01, 1);
        Assert.True(summary.LatencyMs.P50 <= summary.LatencyMs.P99);
        Assert.True(summary.ThroughputRowsPerS > 0);
        Assert.Null(summary.Mse);
    }

    [Fact]
    public void The_weak_classifier_is_clearly_less_accurate()
    {
        var good = EvaluationSummary.Of(ShardEvaluator.Evaluate(SampleDatasets.GoodClassifier(Digits.Train), Digits.Test, ModelTask.Classification, 0, 1));
        var weak = EvaluationSummary.Of(ShardEvaluator.Evaluate(SampleDatasets.WeakClassifier(Digits.Train), Digits.Test, ModelTask.Classification, 0, 1));
        Assert.True(good.Accuracy - weak.Accuracy > 0.1, $"good {good.Accuracy}, weak {weak.Accuracy}");
    }

    [Fact]
    public void Macro_scores_by_hand()
    {
        // class 0: precision 2/2, recall 2/3; class 1: precision 3/4, recall 3/3.
        var (accuracy, precision, recall, f1) = EvaluationMath.MacroScores([[2, 1], [0, 3]]);
        Assert.Equal(5 / 6.0, accuracy, 12);
        Assert.Equal((1 + 0.75) / 2, precision, 12);
        Assert.Equal(((2 / 3.0) + 1) / 2, recall, 12);
        Assert.Equal((0.8 + (1.5 / 1.75)) / 2, f1, 12);
        // A class absent from the labels does not count in the macro average (as scikit-learn).
        var (_, p3, r3, _) = EvaluationMath.MacroScores([[2, 0, 0], [0, 2, 0], [0, 1, 0]]);
        Assert.Equal(((1.0 + (2 / 3.0)) / 2 * 2 / 3) + 0, p3, 12);
        Assert.Equal(2 / 3.0, r3, 12);
    }

    [Fact]
    public void Roc_auc_counts_ties_as_half_and_needs_both_classes()
    {
        Assert.Equal(0.75, EvaluationMath.RocAuc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])!.Value, 12);
        Assert.Equal(0.75, EvaluationMath.RocAuc([0.5, 0.5, 0.5, 0.9], [0, 1, 0, 1])!.Value, 12);
        Assert.Null(EvaluationMath.RocAuc([0.1, 0.2], [0, 0]));
    }

    [Fact]
    public void Percentiles_interpolate_as_numpy()
    {
        Assert.Equal(29.0, EvaluationMath.Percentile([10, 30], 95), 12);
        Assert.Equal(2.5, EvaluationMath.Percentile([1, 2, 3, 4], 50), 12);
        Assert.Equal(0, EvaluationMath.Percentile([], 50));
    }

    [Fact]
    public void Regression_metrics()
    {
        var model = SampleModels.LinearRegressor(1, [2], 0);
        var x = Enumerable.Range(0, 10).Select(i => (double)i).ToArray();
        var y = x.Select(v => (2 * v) + 1).ToArray(); // every prediction is off by exactly 1
        var data = new Dataset(new NumericArray("float32", [10, 1], x), new NumericArray("float64", [10], y));

        var summary = EvaluationSummary.Of(ShardEvaluator.Evaluate(model, data, ModelTask.Regression, 0, 2));

        Assert.Equal((1.0, 1.0, 5L), (summary.Mse!.Value, summary.Mae!.Value, summary.Rows));
        Assert.Null(summary.Accuracy);
    }

    [Fact]
    public void A_model_that_cannot_read_the_dataset_is_a_clear_error()
    {
        var error = Assert.Throws<InvalidDatasetException>(() => ShardEvaluator.Evaluate(SampleModels.AddOne(4), Digits.Test, ModelTask.Regression, 0, 1));
        Assert.Contains("cannot run on the dataset's X", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void A_binary_classifier_gets_roc_auc()
    {
        var x = Enumerable.Range(0, 40).Select(i => -2 + (4.0 * i / 39)).ToArray();
        var y = x.Select(v => v < 0 ? 1.0 : 0.0).ToArray(); // class 1 scores high when x < 0
        var data = new Dataset(new NumericArray("float32", [40, 1], x), new NumericArray("int64", [40], y));

        var summary = EvaluationSummary.Of(ShardEvaluator.Evaluate(SampleModels.LinearClassifier(1, 2, [1, -1], [0, 0]), data, ModelTask.Classification, 0, 1));

        Assert.Equal(1.0, summary.RocAuc!.Value, 12);
        Assert.Equal(1.0, summary.Accuracy!.Value, 12);
    }

    private static EvaluationSummary Summary(double accuracy, double f1, double fastestMs, long nonfinite = 0) => new()
    {
        Task = ModelTask.Classification,
        Rows = 100,
        Nonfinite = nonfinite,
        Accuracy = accuracy,
        F1Macro = f1,
        LatencyMs = new LatencySummary(fastestMs, fastestMs, fastestMs, fastestMs),
        ThroughputRowsPerS = 1,
    };

    [Fact]
    public void The_gate_compares_candidate_and_production()
    {
        var gate = new EvaluationGate();
        var production = Summary(0.95, 0.95, 1.0);
        Assert.True(EvaluationGating.Judge(Summary(0.945, 0.94, 1.2), production, gate).Passed);
        var worse = EvaluationGating.Judge(Summary(0.90, 0.95, 1.0), production, gate);
        Assert.False(worse.Passed);
        Assert.Contains("accuracy regressed from 0.9500 to 0.9000", worse.Reason, StringComparison.Ordinal);
        var slow = EvaluationGating.Judge(Summary(0.95, 0.95, 12.0), production, gate);
        Assert.Contains("batch latency rose from 1.000 ms to 12.000 ms", slow.Reason, StringComparison.Ordinal);
        // A large ratio on sub-millisecond noise is not a regression.
        Assert.True(EvaluationGating.Judge(Summary(0.95, 0.95, 0.5), Summary(0.95, 0.95, 0.1), gate).Passed);
        var nan = EvaluationGating.Judge(Summary(0.95, 0.95, 1.0, nonfinite: 3), null, gate);
        Assert.Contains("non-finite outputs on 3 rows", nan.Reason, StringComparison.Ordinal);
        Assert.True(EvaluationGating.Judge(Summary(0.5, 0.5, 9.0), null, gate).Passed); // a first version
        Assert.Equal("evaluation gate passed", EvaluationGating.Judge(Summary(0.5, 0.5, 9.0), null, gate).Reason);
    }

    [Fact]
    public void The_mse_gate_is_relative()
    {
        EvaluationSummary Regression(double mse) => Summary(0, 0, 1) with { Task = ModelTask.Regression, Accuracy = null, F1Macro = null, Mse = mse, Mae = mse };
        Assert.True(EvaluationGating.Judge(Regression(1.04), Regression(1.0), new EvaluationGate()).Passed);
        var worse = EvaluationGating.Judge(Regression(1.2), Regression(1.0), new EvaluationGate());
        Assert.Contains("MSE rose from 1 to 1.2 (more than 5%)", worse.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void The_latency_gate_reads_full_batches_not_a_shards_short_tail()
    {
        // Three full 32-row batches at 12 ms and a 2-row tail at 0.8 ms: the tail says nothing about
        // the model's cost and must not make a 12x slower model look as fast as production.
        var result = new ShardResult
        {
            Task = ModelTask.Classification,
            Rows = 98,
            Confusion = [[98]],
            BatchLatencyMs = [12.0, 12.5, 13.0, 0.8],
            BatchRows = [32, 32, 32, 2],
        };
        Assert.Equal(12.0, EvaluationSummary.Of(result).LatencyMs.Min);
        var slow = EvaluationGating.Judge(EvaluationSummary.Of(result) with { Accuracy = 0.95, F1Macro = 0.95 }, Summary(0.95, 0.95, 1.0), new EvaluationGate());
        Assert.Contains("batch latency rose from 1.000 ms to 12.000 ms", slow.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void The_slow_model_fails_the_latency_gate_on_real_shards()
    {
        var summaries = new[] { SampleDatasets.GoodClassifier(Digits.Train), SampleDatasets.SlowClassifier(Digits.Train) }
            .Select(model =>
            {
                var shards = Enumerable.Range(0, 2).Select(i => ShardEvaluator.Evaluate(model, Digits.Test, ModelTask.Classification, i, 2)).ToList();
                Assert.NotEqual([32], shards.SelectMany(s => s.BatchRows).Distinct()); // the short tails are there
                return EvaluationSummary.Of(ShardResult.Merge(shards));
            })
            .ToList();
        var gate = EvaluationGating.Judge(summaries[1], summaries[0], new EvaluationGate());
        Assert.False(gate.Passed);
        Assert.Contains("batch latency rose", gate.Reason, StringComparison.Ordinal);
    }

    private static double IndependentAccuracy(byte[] model, Dataset data)
    {
        using var session = new InferenceSession(model);
        var input = new DenseTensor<float>(data.X.ToSingles(), [(int)data.X.Rows, (int)data.X.RowSize]);
        using var results = session.Run([NamedOnnxValue.CreateFromTensor("input", input)]);
        var labels = results.Single(r => r.Name == "label").AsEnumerable<long>().ToArray();
        return labels.Where((label, i) => label == (long)data.Y.Values[i]).Count() / (double)labels.Length;
    }
}
