using System.Globalization;
using Lepton.Shared.Models;
using Lepton.Shared.Policies;

namespace Lepton.Shared.Evaluation;

/// <summary>The gate's verdict: passed, or every reason it failed.</summary>
public sealed record GateResult(bool Passed, IReadOnlyList<string> Reasons)
{
    public string Reason => Reasons.Count > 0 ? string.Join("; ", Reasons) : "evaluation gate passed";
}

/// <summary>The offline evaluation gate: the candidate against production with the policy's tolerances.</summary>
public static class EvaluationGating
{
    public static GateResult Judge(EvaluationSummary candidate, EvaluationSummary? production, EvaluationGate gate)
    {
        var reasons = new List<string>();
        if (candidate.Nonfinite > 0)
        {
            reasons.Add($"candidate produced non-finite outputs on {candidate.Nonfinite} rows");
        }
        if (production is null)
        {
            return new GateResult(reasons.Count == 0, reasons);
        }
        if (candidate.Task == ModelTask.Classification)
        {
            var (prodAccuracy, candAccuracy) = (production.Accuracy ?? 0, candidate.Accuracy ?? 0);
            var drop = prodAccuracy - candAccuracy;
            if (drop > gate.MaxAccuracyDrop)
            {
                reasons.Add(Invariant($"accuracy regressed from {prodAccuracy:F4} to {candAccuracy:F4} (drop {drop:F4} > {gate.MaxAccuracyDrop})"));
            }
            var (prodF1, candF1) = (production.F1Macro ?? 0, candidate.F1Macro ?? 0);
            var f1Drop = prodF1 - candF1;
            if (f1Drop > gate.MaxF1Drop)
            {
                reasons.Add(Invariant($"macro F1 regressed from {prodF1:F4} to {candF1:F4} (drop {f1Drop:F4} > {gate.MaxF1Drop})"));
            }
        }
        else
        {
            var (prodMse, candMse) = (production.Mse ?? 0, candidate.Mse ?? 0);
            if (candMse > prodMse * (1 + gate.MaxMseIncrease))
            {
                reasons.Add(Invariant($"MSE rose from {prodMse:G6} to {candMse:G6} (more than {gate.MaxMseIncrease * 100:0.##}%)"));
            }
        }
        // Shards of both versions run in parallel on shared CPUs, so tail latencies here measure
        // contention as much as the model; the fastest full batch is the noise-free estimate of
        // what a version costs. Tail latency under real load is the canary's job (DESIGN §5).
        var (prodMs, candMs) = (production.LatencyMs.Min, candidate.LatencyMs.Min);
        var ratio = prodMs > 0 ? candMs / prodMs : 1.0;
        if (ratio > gate.MaxLatencyRatio && candMs - prodMs > gate.MinLatencyDeltaMs)
        {
            reasons.Add(Invariant($"batch latency rose from {prodMs:F3} ms to {candMs:F3} ms (fastest batch, ratio {ratio:F1} > {gate.MaxLatencyRatio})"));
        }
        return new GateResult(reasons.Count == 0, reasons);
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
