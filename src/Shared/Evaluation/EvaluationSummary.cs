using System.Text.Json.Serialization;
using Lepton.Shared.Models;

namespace Lepton.Shared.Evaluation;

/// <summary>Latency of the evaluation's batches: percentiles, and the fastest full batch.</summary>
public sealed record LatencySummary(double P50, double P95, double P99, double Min);

/// <summary>
/// Finished metrics of a (merged) shard result: quality, latency percentiles and throughput.
/// Classification fills accuracy and the macro scores (ROC-AUC for a binary classifier with
/// both classes present); regression fills MSE and MAE. What does not apply is left out of the JSON.
/// </summary>
public sealed record EvaluationSummary
{
    public required ModelTask Task { get; init; }

    public required long Rows { get; init; }

    public required long Nonfinite { get; init; }

    public required LatencySummary LatencyMs { get; init; }

    public required double ThroughputRowsPerS { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double? Accuracy { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double? PrecisionMacro { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double? RecallMacro { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double? F1Macro { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double? RocAuc { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double? Mse { get; init; }

    [JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)]
    public double? Mae { get; init; }

    public static EvaluationSummary Of(ShardResult result)
    {
        var latencies = result.BatchLatencyMs;
        var totalMs = latencies.Sum();
        // The fastest *full* batch: a shard's short last batch (14 rows instead of 32, say) is
        // faster for every model, and would let a model 300x slower per row pass the latency gate.
        var full = latencies;
        if (result.BatchRows.Length == latencies.Length && latencies.Length > 0)
        {
            var most = result.BatchRows.Max();
            full = latencies.Where((_, i) => result.BatchRows[i] == most).ToArray();
        }
        var summary = new EvaluationSummary
        {
            Task = result.Task,
            Rows = result.Rows,
            Nonfinite = result.Nonfinite,
            LatencyMs = new LatencySummary(
                EvaluationMath.Percentile(latencies, 50),
                EvaluationMath.Percentile(latencies, 95),
                EvaluationMath.Percentile(latencies, 99),
                full.Length > 0 ? full.Min() : 0),
            ThroughputRowsPerS = totalMs > 0 ? result.Rows / (totalMs / 1000.0) : 0,
        };
        if (result.Task == ModelTask.Regression)
        {
            var n = Math.Max(result.Rows - result.Nonfinite, 1);
            return summary with { Mse = result.SumSquaredError / n, Mae = result.SumAbsoluteError / n };
        }
        var (accuracy, precision, recall, f1) = EvaluationMath.MacroScores(result.Confusion);
        return summary with
        {
            Accuracy = accuracy,
            PrecisionMacro = precision,
            RecallMacro = recall,
            F1Macro = f1,
            RocAuc = result.BinaryScores.Length > 0 ? EvaluationMath.RocAuc(result.BinaryScores, result.BinaryLabels) : null,
        };
    }
}

/// <summary>The numerics of the evaluation: numpy's default percentile, macro scores, rank-based ROC-AUC.</summary>
public static class EvaluationMath
{
    /// <summary>The <paramref name="q"/>-th percentile with linear interpolation (numpy's default); 0 when empty.</summary>
    public static double Percentile(IReadOnlyList<double> values, double q)
    {
        if (values.Count == 0)
        {
            return 0;
        }
        var sorted = values.Order().ToArray();
        var position = q / 100.0 * (sorted.Length - 1);
        var low = (int)Math.Floor(position);
        var high = Math.Min(low + 1, sorted.Length - 1);
        return sorted[low] + ((sorted[high] - sorted[low]) * (position - low));
    }

    /// <summary>
    /// Accuracy and macro precision, recall and F1 over the classes present in the labels (as
    /// scikit-learn averages them); a class never predicted has precision 0.
    /// </summary>
    public static (double Accuracy, double Precision, double Recall, double F1) MacroScores(long[][] confusion)
    {
        var classes = confusion.Length;
        double total = 0, correct = 0;
        var predicted = new double[classes];
        var support = new double[classes];
        for (var t = 0; t < classes; t++)
        {
            for (var p = 0; p < classes; p++)
            {
                total += confusion[t][p];
                support[t] += confusion[t][p];
                predicted[p] += confusion[t][p];
            }
            correct += confusion[t][t];
        }
        double precision = 0, recall = 0, f1 = 0;
        var present = 0;
        for (var c = 0; c < classes; c++)
        {
            if (support[c] == 0)
            {
                continue;
            }
            present++;
            var tp = confusion[c][c];
            var pr = predicted[c] > 0 ? tp / predicted[c] : 0;
            var re = tp / support[c];
            precision += pr;
            recall += re;
            f1 += pr + re > 0 ? 2 * pr * re / (pr + re) : 0;
        }
        return present == 0
            ? (total > 0 ? correct / total : 0, 0, 0, 0)
            : (total > 0 ? correct / total : 0, precision / present, recall / present, f1 / present);
    }

    /// <summary>Binary ROC-AUC as the Mann-Whitney U statistic over average ranks (ties count half); <c>null</c> when a class is absent.</summary>
    public static double? RocAuc(IReadOnlyList<double> scores, IReadOnlyList<int> labels)
    {
        var positives = labels.Count(l => l == 1);
        var negatives = labels.Count - positives;
        if (positives == 0 || negatives == 0)
        {
            return null;
        }
        var order = Enumerable.Range(0, scores.Count).OrderBy(i => scores[i]).ToArray();
        var ranks = new double[scores.Count];
        for (var i = 0; i < order.Length;)
        {
            var j = i;
            while (j + 1 < order.Length && scores[order[j + 1]] == scores[order[i]])
            {
                j++;
            }
            var average = ((i + j) / 2.0) + 1;
            for (var k = i; k <= j; k++)
            {
                ranks[order[k]] = average;
            }
            i = j + 1;
        }
        var positiveRanks = Enumerable.Range(0, scores.Count).Where(i => labels[i] == 1).Sum(i => ranks[i]);
        return (positiveRanks - (positives * (positives + 1) / 2.0)) / ((double)positives * negatives);
    }
}
