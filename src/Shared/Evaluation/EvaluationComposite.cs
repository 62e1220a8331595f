using Lepton.Shared.Policies;
using Lepton.Shared.Statistics;

namespace Lepton.Shared.Evaluation;

/// <summary>
/// <c>P = w1·T + w2·R + w3·E</c> of one version on the evaluation dataset, with the formula and
/// scales live traffic uses (<see cref="CompositeScore"/>), from what an offline run measures:
/// T from the p95 batch latency (batches of <see cref="ShardEvaluator.BatchRows"/> rows, the unit
/// a worker's batcher runs too), R from ONNX Runtime time per 1,000 rows, E from the rows with
/// non-finite outputs (the offline failed request; wrong answers are what accuracy measures).
/// Both versions' shards share the CPUs, so compare scores within one report, not across reports.
/// Parts are NaN for a dataset without rows.
/// </summary>
public static class EvaluationComposite
{
    public static CompositeScore Of(ShardResult result, CompositeWeights weights)
    {
        var latencies = result.BatchLatencyMs;
        var p95 = latencies.Length > 0 ? EvaluationMath.Percentile(latencies, 95) : double.NaN;
        var per1k = result.Rows > 0 ? latencies.Sum() / result.Rows * 1000.0 : double.NaN;
        var errorRate = result.Rows > 0 ? (double)result.Nonfinite / result.Rows : double.NaN;
        return CompositeScore.FromParts(p95, per1k, errorRate, weights);
    }
}
