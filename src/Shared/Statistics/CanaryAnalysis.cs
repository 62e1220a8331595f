using System.Text.Json.Serialization;
using Lepton.Shared.Metrics;
using Lepton.Shared.Policies;

namespace Lepton.Shared.Statistics;

/// <summary>A check's statistics and, when they show a regression, the rollback reason a user reads.</summary>
public readonly record struct Judged<T>(T Statistics, string? RollbackReason);

/// <summary>p95s from the histograms, their ratio and difference, and Mann-Whitney over the buckets.</summary>
/// <param name="CandidateP95Ms">Upper bound of the candidate's p95 bucket (∞ in the overflow bucket, NaN when empty).</param>
/// <param name="ProductionP95Ms">The same for production.</param>
/// <param name="P95Ratio">Candidate / production p95 (1 when both overflow, 0 when only production does).</param>
/// <param name="P95DeltaMs">Candidate − production p95 (ms).</param>
/// <param name="MannWhitney">One-sided test that the candidate is slower.</param>
public sealed record LatencyComparison(
    [property: JsonPropertyName("candidate_p95_ms")] double CandidateP95Ms,
    [property: JsonPropertyName("production_p95_ms")] double ProductionP95Ms,
    [property: JsonPropertyName("p95_ratio")] double P95Ratio,
    [property: JsonPropertyName("p95_delta_ms")] double P95DeltaMs,
    MannWhitneyResult MannWhitney)
{
    /// <summary>The comparison of two rollups' histograms.</summary>
    public static LatencyComparison Of(WindowRollup candidate, WindowRollup production)
    {
        var candidateP95 = LatencyStatistics.P95FromBuckets(candidate.LatencyBuckets);
        var productionP95 = LatencyStatistics.P95FromBuckets(production.LatencyBuckets);
        // NaN or ∞ propagate into the delta; NaN then compares false, so it never rolls back.
        return new LatencyComparison(
            candidateP95,
            productionP95,
            Ratio(candidateP95, productionP95),
            candidateP95 - productionP95,
            LatencyStatistics.MannWhitneyFromBuckets(candidate.LatencyBuckets, production.LatencyBuckets));
    }

    /// <summary>
    /// Slower by a practically large p95 ratio, by more than the absolute floor (a 3x ratio on
    /// 0.1 ms is scheduler jitter, not a regression), and significantly by <paramref name="pValue"/>.
    /// </summary>
    public bool IsRegression(CanaryThresholds thresholds, double pValue) =>
        P95Ratio > thresholds.MaxP95LatencyRatio
        && P95DeltaMs > thresholds.MinP95LatencyDeltaMs
        && pValue < thresholds.LatencyAlpha;

    private static double Ratio(double candidateP95, double productionP95)
    {
        if (double.IsNaN(candidateP95) || double.IsNaN(productionP95))
        {
            return double.NaN;
        }
        if (double.IsInfinity(productionP95))
        {
            return double.IsInfinity(candidateP95) ? 1.0 : 0.0;
        }
        return candidateP95 / productionP95;
    }
}

/// <summary>Shadow agreement statistics: the flip-rate test where pairs exist, the PSI where score bins do.</summary>
public sealed record AgreementStatistics(FlipRateResult? Flips, double? Psi);

/// <summary>
/// Judges one canary step (or the shadow phase) of a candidate against production, from the
/// <see cref="WindowRollup"/> totals of its windows so far. Pure and deterministic.
/// </summary>
/// <remarks>
/// <see cref="DecideCanaryStep"/> applies the checks in a fixed order, each with its own reason:
/// <list type="number">
/// <item><b>Sample-ratio mismatch first</b> (chi-square of the routed split against the configured
/// weight at <c>srm_alpha</c>, 0.001 by default). If routing did not do what it was told, every
/// other comparison is biased, so the step is <see cref="Verdict.Invalid"/> rather than judged. The
/// level is strict because the check runs at every look of every rollout and real routing bugs give
/// enormous chi-square values anyway (the SRM literature, e.g. Fabijan et al. 2019, uses p &lt; 0.0005
/// for the same reason).</item>
/// <item><b>Error rate by an always-valid sequential test</b> (<see cref="ErrorRateEProcess"/>): the
/// orchestrator looks at the totals after every check interval, and a fixed-horizon test repeated
/// that often would roll back healthy versions far more often than its alpha says (a one-sided
/// z-test at 0.05 peeked every 100 requests rolls back about a third of healthy canaries within
/// 20,000 requests: <see cref="CanarySimulation"/>). The e-process stays valid under any number of
/// looks, so a clear regression may stop the step early, even with fewer than <c>min_requests</c>
/// samples, while the false-rollback rate stays below <c>alpha</c>.</item>
/// <item><b>Too few samples</b> → <see cref="Verdict.InsufficientEvidence"/>: the step extends
/// (bounded by the policy) instead of passing on no data.</item>
/// <item><b>Latency</b>: a rollback needs a practically large p95 ratio, an absolute p95 difference
/// above the floor, and a significant one-sided Mann-Whitney U over the bucketed latencies
/// (<see cref="LatencyStatistics"/>).</item>
/// <item><b>Shadow agreement and score shift</b>, where the rollups carry them
/// (<see cref="PairedStatistics"/>).</item>
/// </list>
/// Every decision also carries the composite score of both versions in its checks, for the reports.
/// </remarks>
public static class CanaryAnalysis
{
    /// <summary>
    /// The production totals a canary step is judged against: <paramref name="window"/> or
    /// <paramref name="baseline"/>.
    /// </summary>
    /// <remarks>
    /// Below 100 % production serves the rest of the same window, the fairest comparison (same
    /// time, same load), so <paramref name="window"/> is used. At 100 % production gets no routed
    /// traffic: the window holds nothing (or a few pinned calls) and no regression could be shown,
    /// so the step would pass on no evidence. There <paramref name="baseline"/> — production's
    /// totals measured earlier in the same rollout — is used when it saw requests. A comparison
    /// across time is weaker than a concurrent split (a change of load between the two shows as a
    /// difference), which is why it is used only where no concurrent production traffic exists.
    /// </remarks>
    public static WindowRollup? ProductionReference(WindowRollup? window, WindowRollup? baseline, int weightBp) =>
        weightBp == Policy.BasisPoints && baseline is not null && baseline.Requests > 0 ? baseline : window;

    /// <summary>
    /// Judges one canary step from the totals accumulated since the step began (order: see the
    /// type's remarks).
    /// </summary>
    /// <remarks>
    /// Pass the totals at every look: the error test stays valid however often it is called on
    /// growing totals, and the SRM check compares them with this step's weight (so do not carry
    /// routed counts across steps). Each step is a fresh sequential test, so over S steps the
    /// false-rollback rate is at most S·alpha (far less in practice). <paramref name="production"/>
    /// <c>null</c> means there is no production version to compare with: no SRM or latency
    /// comparison, and no error regression can be shown; only the sample-size floor applies. At
    /// 10 000 bp production receives no routed traffic: pass its totals from the earlier steps
    /// (<see cref="ProductionReference"/> picks them); its sample-size floor is not applied there.
    /// </remarks>
    public static CanaryDecision DecideCanaryStep(
        WindowRollup? candidate,
        WindowRollup? production,
        int weightBp,
        CanaryThresholds thresholds,
        bool finalStep,
        CompositeWeights? compositeWeights = null)
    {
        SampleRatioMismatch.CheckWeight(weightBp);
        thresholds.Validate();
        compositeWeights ??= new CompositeWeights();
        CompositeScore.Check(compositeWeights, CompositeScales.Default);
        var weight = PythonFormat.G(weightBp / 100.0);
        if (candidate is null || candidate.Requests == 0)
        {
            return new CanaryDecision(
                Verdict.InsufficientEvidence,
                $"no requests reached the candidate yet at weight {weight}%; keep the step running",
                new CanaryChecks { WeightBp = weightBp, CandidateRequests = 0 });
        }
        var checks = new CanaryChecks
        {
            WeightBp = weightBp,
            CandidateRequests = candidate.Requests,
            ProductionRequests = production?.Requests ?? 0,
            CandidateRouted = candidate.RoutedRequests,
            ProductionRouted = production?.RoutedRequests ?? 0,
            Composite = CompositeComparison.Of(candidate, production, compositeWeights),
        };

        if (production is not null && weightBp != Policy.BasisPoints)
        {
            var srm = SampleRatioMismatch.Test(candidate.RoutedRequests, production.RoutedRequests, weightBp);
            checks = checks with { SrmChi2 = srm.Chi2, SrmP = srm.PValue };
            if (srm.PValue < thresholds.SrmAlpha)
            {
                var routed = candidate.RoutedRequests + production.RoutedRequests;
                var share = (double)candidate.RoutedRequests / routed;
                return new CanaryDecision(
                    Verdict.Invalid,
                    $"sample-ratio mismatch: the candidate got {PythonFormat.F(100 * share, 2)}% of {routed} routed requests "
                    + $"but its weight is {weight}% (chi2={PythonFormat.F(srm.Chi2, 1)}, p={PythonFormat.G(srm.PValue, 2)} < "
                    + $"{PythonFormat.G(thresholds.SrmAlpha)}); the window is not judged — check the router and the replicas' route tables",
                    checks);
            }
        }

        var errors = ErrorChecks(candidate, production, thresholds);
        checks = checks.With(errors.Statistics);
        if (errors.RollbackReason is not null)
        {
            return new CanaryDecision(Verdict.Rollback, errors.RollbackReason, checks);
        }

        // At 100 % production gets no routed traffic, so only its earlier totals (if passed) count.
        var shortOf = new List<string>();
        if (candidate.Requests < thresholds.MinRequests)
        {
            shortOf.Add($"candidate {candidate.Requests}");
        }
        if (production is not null && weightBp < Policy.BasisPoints && production.Requests < thresholds.MinRequests)
        {
            shortOf.Add($"production {production.Requests}");
        }
        if (shortOf.Count > 0)
        {
            return new CanaryDecision(
                Verdict.InsufficientEvidence,
                $"too few requests to judge ({string.Join(", ", shortOf)} < {thresholds.MinRequests} per version); the step extends",
                checks);
        }

        if (production is not null)
        {
            var latency = LatencyChecks(candidate, production, thresholds);
            checks = checks.With(latency.Statistics);
            if (latency.RollbackReason is not null)
            {
                return new CanaryDecision(Verdict.Rollback, latency.RollbackReason, checks);
            }
            var agreement = AgreementChecks(candidate, production, thresholds);
            checks = With(checks, agreement.Statistics);
            if (agreement.RollbackReason is not null)
            {
                return new CanaryDecision(Verdict.Rollback, agreement.RollbackReason, checks);
            }
        }

        var summary = $"error rate {FormatPercent(errors.Statistics.CandidateRate)} vs production "
            + (production is not null ? FormatPercent(errors.Statistics.ProductionRate) : "(none: no production version to compare with)");
        if (checks.P95Ratio is { } ratio)
        {
            summary += $", p95 ratio {PythonFormat.F(ratio, 2)}";
        }
        return finalStep
            ? new CanaryDecision(Verdict.Promote, $"final step passed over {candidate.Requests} requests: {summary}", checks)
            : new CanaryDecision(Verdict.Continue, $"step passed over {candidate.Requests} requests: {summary}", checks);
    }

    /// <summary>
    /// Judges shadow traffic (the candidate answering mirrored production requests): errors, flip
    /// rate, score shift and paired latency. <see cref="Verdict.Promote"/> means "shadow passed, go
    /// on to the canary" (<see cref="Verdict.Continue"/> when <paramref name="final"/> is false, for
    /// an early look that found nothing wrong).
    /// </summary>
    /// <remarks>
    /// Latency is judged by the paired Wilcoxon signed-rank test on per-request differences, the
    /// sharper test; without paired samples it falls back to Mann-Whitney over the histograms,
    /// which describe the same mirrored requests.
    /// </remarks>
    public static CanaryDecision DecideShadow(
        WindowRollup candidate,
        WindowRollup production,
        CanaryThresholds thresholds,
        bool final = true,
        CompositeWeights? compositeWeights = null)
    {
        thresholds.Validate();
        compositeWeights ??= new CompositeWeights();
        CompositeScore.Check(compositeWeights, CompositeScales.Default);
        var checks = new CanaryChecks { ShadowPairs = candidate.ShadowPairs };
        if (candidate.ShadowPairs == 0 || candidate.Requests == 0)
        {
            return new CanaryDecision(
                Verdict.InsufficientEvidence,
                "no shadow pairs recorded yet; check that the shadow fraction is above 0 and the candidate is warm",
                checks);
        }
        checks = checks with { Composite = CompositeComparison.Of(candidate, production, compositeWeights) };
        var errors = ErrorChecks(candidate, production, thresholds);
        checks = checks.With(errors.Statistics);
        if (errors.RollbackReason is not null)
        {
            return new CanaryDecision(Verdict.Rollback, errors.RollbackReason, checks);
        }
        if (candidate.ShadowPairs < thresholds.MinRequests)
        {
            return new CanaryDecision(
                Verdict.InsufficientEvidence,
                $"too few shadow pairs to judge ({candidate.ShadowPairs} < {thresholds.MinRequests}); shadowing continues",
                checks);
        }

        var agreement = AgreementChecks(candidate, production, thresholds);
        checks = With(checks, agreement.Statistics);
        if (agreement.RollbackReason is not null)
        {
            return new CanaryDecision(Verdict.Rollback, agreement.RollbackReason, checks);
        }

        var latency = LatencyComparison.Of(candidate, production);
        checks = checks.With(latency);
        var diffs = candidate.PairedLatencyDiffMs;
        var wilcoxon = PairedStatistics.WilcoxonPairedLatency(diffs);
        var medianDiff = diffs.Length > 0 ? MathNet.Numerics.Statistics.Statistics.Median(diffs) : double.NaN;
        checks = checks with
        {
            PairedLatencySamples = diffs.Length,
            PairedLatencyMedianDiffMs = medianDiff,
            PairedWilcoxonStat = wilcoxon.Statistic,
            PairedWilcoxonP = wilcoxon.PValue,
        };
        var paired = diffs.Length > 0;
        var latencyP = paired ? wilcoxon.PValue : latency.MannWhitney.PValue;
        if (latency.IsRegression(thresholds, latencyP))
        {
            var medianText = paired ? $", median paired difference {PythonFormat.SignedF(medianDiff, 2)} ms" : "";
            return new CanaryDecision(
                Verdict.Rollback,
                $"candidate is slower on the same requests: p95 {PythonFormat.G(latency.CandidateP95Ms)} ms vs "
                + $"{PythonFormat.G(latency.ProductionP95Ms)} ms (ratio {PythonFormat.F(latency.P95Ratio, 2)} > "
                + $"{PythonFormat.G(thresholds.MaxP95LatencyRatio)}, +{PythonFormat.G(latency.P95DeltaMs)} ms > "
                + $"{PythonFormat.G(thresholds.MinP95LatencyDeltaMs)} ms){medianText} ({(paired ? "Wilcoxon" : "Mann-Whitney")} "
                + $"p={PythonFormat.G(latencyP, 2)} < {PythonFormat.G(thresholds.LatencyAlpha)})",
                checks);
        }

        var agreementShare = checks.Agreement ?? double.NaN;
        var summary = $"agreement {PythonFormat.F(100 * agreementShare, 1)}% over {candidate.ShadowPairs} pairs, error rate "
            + $"{FormatPercent(errors.Statistics.CandidateRate)} vs {FormatPercent(errors.Statistics.ProductionRate)}";
        return final
            ? new CanaryDecision(Verdict.Promote, $"shadow passed: {summary}", checks)
            : new CanaryDecision(Verdict.Continue, $"shadow looks healthy so far: {summary}", checks);
    }

    /// <summary>The always-valid error-rate test of the candidate against production (none: 0 of 0).</summary>
    public static Judged<ErrorRateEvidence> ErrorChecks(WindowRollup candidate, WindowRollup? production, CanaryThresholds thresholds)
    {
        var (productionErrors, productionRequests) = production is null ? (0L, 0L) : (production.Errors, production.Requests);
        var result = ErrorRateEvidence.Test(candidate.Errors, candidate.Requests, productionErrors, productionRequests, thresholds);
        if (!result.Regression)
        {
            return new Judged<ErrorRateEvidence>(result, null);
        }
        return new Judged<ErrorRateEvidence>(
            result,
            $"candidate error rate {FormatPercent(result.CandidateRate)} ({candidate.Errors}/{candidate.Requests}) vs production "
            + $"{FormatPercent(result.ProductionRate)} ({productionErrors}/{productionRequests}) exceeds the tolerated "
            + $"{FormatPercent(result.ToleratedRate)} (always-valid p={PythonFormat.G(result.PValue, 2)} < {PythonFormat.G(thresholds.Alpha)})");
    }

    /// <summary>Latency statistics, and a rollback reason when the p95 ratio, its absolute difference and Mann-Whitney all say slower.</summary>
    public static Judged<LatencyComparison> LatencyChecks(WindowRollup candidate, WindowRollup production, CanaryThresholds thresholds)
    {
        var l = LatencyComparison.Of(candidate, production);
        if (!l.IsRegression(thresholds, l.MannWhitney.PValue))
        {
            return new Judged<LatencyComparison>(l, null);
        }
        return new Judged<LatencyComparison>(
            l,
            $"candidate p95 latency {PythonFormat.G(l.CandidateP95Ms)} ms vs production {PythonFormat.G(l.ProductionP95Ms)} ms "
            + $"(ratio {PythonFormat.F(l.P95Ratio, 2)} > {PythonFormat.G(thresholds.MaxP95LatencyRatio)}, +{PythonFormat.G(l.P95DeltaMs)} ms > "
            + $"{PythonFormat.G(thresholds.MinP95LatencyDeltaMs)} ms; Mann-Whitney p={PythonFormat.G(l.MannWhitney.PValue, 2)} < "
            + $"{PythonFormat.G(thresholds.LatencyAlpha)})");
    }

    /// <summary>
    /// Flip-rate and PSI statistics where the rollups carry them, and a rollback reason: agreement
    /// significantly below <c>min_agreement</c> (exact binomial at <c>alpha</c>), or a PSI above
    /// <c>max_psi</c>.
    /// </summary>
    public static Judged<AgreementStatistics> AgreementChecks(WindowRollup candidate, WindowRollup production, CanaryThresholds thresholds)
    {
        FlipRateResult? flips = null;
        double? psi = null;
        string? reason = null;
        if (candidate.ShadowPairs > 0)
        {
            flips = PairedStatistics.FlipRateTest(candidate.ShadowPairs, candidate.ShadowFlips, 1.0 - thresholds.MinAgreement, thresholds.Alpha);
            if (flips.Exceeds)
            {
                reason = $"candidate agrees with production on {PythonFormat.F(100 * (1 - flips.FlipRate), 1)}% of {flips.Pairs} paired requests, "
                    + $"below the {PythonFormat.G(100 * thresholds.MinAgreement)}% floor (exact binomial p={PythonFormat.G(flips.PValue, 2)} < "
                    + $"{PythonFormat.G(thresholds.Alpha)})";
            }
        }
        if (candidate.ScoreBinCounts.Sum() > 0 && production.ScoreBinCounts.Sum() > 0)
        {
            psi = PairedStatistics.PopulationStabilityIndex(production.ScoreBinCounts, candidate.ScoreBinCounts);
            if (reason is null && psi > thresholds.MaxPsi)
            {
                reason = $"candidate output scores shifted from production's (PSI {PythonFormat.F(psi.Value, 3)} > {PythonFormat.G(thresholds.MaxPsi)})";
            }
        }
        return new Judged<AgreementStatistics>(new AgreementStatistics(flips, psi), reason);
    }

    /// <summary>A rate as a percentage the way reasons print it: 2 significant digits below 10 %, one decimal above.</summary>
    public static string FormatPercent(double rate) =>
        rate < 0.1 ? PythonFormat.G(100 * rate, 2) + "%" : PythonFormat.F(100 * rate, 1) + "%";

    private static CanaryChecks With(CanaryChecks checks, AgreementStatistics agreement)
    {
        if (agreement.Flips is { } flips)
        {
            checks = checks.With(flips);
        }
        return agreement.Psi is { } psi ? checks with { Psi = psi } : checks;
    }
}
