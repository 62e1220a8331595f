using System.Text.Json.Nodes;
using Lepton.Shared.Metrics;
using Lepton.Shared.Policies;
using Lepton.Shared.Statistics;
using static Lepton.Shared.Tests.Statistics.Rollups;

namespace Lepton.Shared.Tests.Statistics;

public sealed class CanaryAnalysisTests
{
    private static readonly CanaryThresholds Defaults = new();

    private static CanaryDecision Decide(WindowRollup? candidate, WindowRollup? production, int weightBp = 1000, bool finalStep = false, CanaryThresholds? thresholds = null) =>
        CanaryAnalysis.DecideCanaryStep(candidate, production, weightBp, thresholds ?? Defaults, finalStep);

    [Fact]
    public void A_healthy_step_continues_and_the_final_step_promotes()
    {
        var rng = Seeded(11);
        var candidate = Rollup("1.1.0", 1000, errors: 3, latenciesMs: LogNormalMs(rng, 1.5, 0.4, 1000));
        var production = Rollup("1.0.0", 9000, errors: 30, latenciesMs: LogNormalMs(rng, 1.5, 0.4, 9000));
        var step = Decide(candidate, production);
        Assert.Equal(Verdict.Continue, step.Verdict);
        Assert.Contains("0.3% vs production 0.33%", step.Reason);
        Assert.StartsWith("step passed over 1000 requests: error rate", step.Reason);
        Assert.Equal(Verdict.Promote, Decide(candidate, production, finalStep: true).Verdict);
        var keys = JsonNode.Parse(LeptonJson.Serialize(step.Checks))!.AsObject().Select(p => p.Key).ToHashSet();
        foreach (var key in new[] { "srm_p", "error_p_value", "p95_ratio", "latency_mwu_p", "candidate_error_rate", "composite" })
        {
            Assert.Contains(key, keys);
        }
        Assert.DoesNotContain("shadow_pairs", keys); // no pairs: the agreement checks did not run
    }

    [Fact]
    public void Sample_ratio_mismatch_invalidates_before_anything_else()
    {
        // The candidate fails a lot, but it also got 2% of the traffic instead of 10%: not judged.
        var d = Decide(Rollup("1.1.0", 200, errors: 100), Rollup("1.0.0", 9800));
        Assert.Equal(Verdict.Invalid, d.Verdict);
        Assert.Contains("sample-ratio mismatch", d.Reason);
        Assert.Contains("2.00% of 10000 routed requests", d.Reason);
        Assert.Contains("weight is 10%", d.Reason);
        Assert.Null(d.Checks.ErrorPValue); // the error test never ran
    }

    [Fact]
    public void Srm_is_skipped_at_full_weight_and_without_production()
    {
        var candidate = Rollup("1.1.0", 500);
        var pinnedOnly = Rollup("1.0.0", 400, routed: 0);
        Assert.Null(Decide(candidate, pinnedOnly, weightBp: 10_000).Checks.SrmP);
        var alone = Decide(candidate, null, weightBp: 500);
        Assert.Equal(Verdict.Continue, alone.Verdict);
        Assert.Null(alone.Checks.SrmP);
        Assert.Null(alone.Checks.Composite!.Production);
    }

    [Fact]
    public void A_clear_error_regression_rolls_back_below_min_requests()
    {
        var d = Decide(Rollup("1.1.0", 120, errors: 25), Rollup("1.0.0", 1080, errors: 2));
        Assert.Equal(Verdict.Rollback, d.Verdict);
        Assert.StartsWith("candidate error rate 20.8% (25/120) vs production 0.19% (2/1080)", d.Reason);
        Assert.Contains("always-valid p=", d.Reason);
        Assert.True(d.Checks.ErrorRegression);
    }

    [Fact]
    public void Few_samples_without_a_clear_regression_are_insufficient_evidence()
    {
        var production = Rollup("1.0.0", 450, errors: 2);
        var d = Decide(Rollup("1.1.0", 50, errors: 1), production);
        Assert.Equal(Verdict.InsufficientEvidence, d.Verdict);
        Assert.Contains("candidate 50 < 200", d.Reason);
        Assert.Equal(Verdict.InsufficientEvidence, Decide(null, production).Verdict);
        var none = Decide(Rollup("1.1.0", 0), production, weightBp: 2500);
        Assert.Equal("no requests reached the candidate yet at weight 25%; keep the step running", none.Reason);
        Assert.Equal("""{"weight_bp":2500,"candidate_requests":0}""", LeptonJson.Serialize(none.Checks));
        Assert.Contains("production 150 < 200", Decide(Rollup("1.1.0", 300), Rollup("1.0.0", 150, routed: 150), weightBp: 6667).Reason);
    }

    [Fact]
    public void Too_few_samples_are_judged_before_latency()
    {
        // Slow, but only 100 requests: the step extends rather than rolling back on latency.
        var production = Rollup("1.0.0", 900, latenciesMs: LogNormalMs(Seeded(1), 1.5, 0.3, 900));
        var slow = Rollup("1.1.0", 100, latenciesMs: LogNormalMs(Seeded(2), 4.0, 0.3, 100));
        var d = Decide(slow, production);
        Assert.Equal(Verdict.InsufficientEvidence, d.Verdict);
        Assert.Null(d.Checks.P95Ratio);
    }

    [Fact]
    public void A_latency_regression_needs_a_large_ratio_and_significance()
    {
        var rng = Seeded(5);
        var production = Rollup("1.0.0", 9000, latenciesMs: LogNormalMs(rng, 1.5, 0.3, 9000));
        var slow = Rollup("1.1.0", 1000, latenciesMs: LogNormalMs(rng, 2.5, 0.3, 1000));
        var d = Decide(slow, production);
        Assert.Equal(Verdict.Rollback, d.Verdict);
        Assert.Contains("p95 latency", d.Reason);
        Assert.True(d.Checks.P95Ratio > 1.5);
        // The same shift judged with a tolerance larger than the ratio is not a rollback.
        Assert.Equal(Verdict.Continue, Decide(slow, production, thresholds: Defaults with { MaxP95LatencyRatio = 10.0 }).Verdict);
        // A significant but small shift (p95 at most one bucket up) is not a rollback either.
        var nudge = Rollup("1.1.0", 1000, latenciesMs: LogNormalMs(rng, 1.55, 0.3, 1000));
        var small = Decide(nudge, production);
        Assert.True(small.Checks.LatencyMwuP < 0.01, $"p = {small.Checks.LatencyMwuP}");
        Assert.Equal(Verdict.Continue, small.Verdict);
    }

    [Fact]
    public void A_large_ratio_on_sub_millisecond_latencies_is_not_a_regression()
    {
        var rng = Seeded(6);
        // 3x slower, clearly significant, but both p95s well under a millisecond: jitter, not cost.
        var production = Rollup("1.0.0", 9000, latenciesMs: LogNormalMs(rng, -2.3, 0.2, 9000));
        var fastButSlower = Rollup("1.1.0", 1000, latenciesMs: LogNormalMs(rng, -1.2, 0.2, 1000));
        var d = Decide(fastButSlower, production);
        Assert.True(d.Checks.P95Ratio > 1.5 && d.Checks.LatencyMwuP < 0.01);
        Assert.True(d.Checks.P95DeltaMs < 1.0);
        Assert.Equal(Verdict.Continue, d.Verdict);
        // With the floor off, the ratio alone decides.
        var floorless = Decide(fastButSlower, production, thresholds: Defaults with { MinP95LatencyDeltaMs = 0.0 });
        Assert.Equal(Verdict.Rollback, floorless.Verdict);
        Assert.Contains("ms > 0 ms", floorless.Reason);
    }

    [Fact]
    public void A_canary_step_rolls_back_on_low_agreement_and_on_a_score_shift()
    {
        var flips = Rollup("1.1.0", 1000) with { ShadowPairs = 1000, ShadowFlips = 120 };
        var d = Decide(flips, Rollup("1.0.0", 9000));
        Assert.Equal(Verdict.Rollback, d.Verdict);
        Assert.Contains("agrees with production on 88.0% of 1000 paired requests", d.Reason);

        var shifted = Rollup("1.1.0", 1000) with { ScoreBinCounts = [0, 0, 0, 0, 0, 200, 200, 200, 200, 200] };
        var baseline = Rollup("1.0.0", 9000) with { ScoreBinCounts = Enumerable.Repeat(900L, 10).ToArray() };
        d = Decide(shifted, baseline);
        Assert.Equal(Verdict.Rollback, d.Verdict);
        Assert.Contains("PSI", d.Reason);
        Assert.True(d.Checks.Psi > Defaults.MaxPsi);
    }

    [Fact]
    public void Latency_is_judged_before_agreement()
    {
        var production = Rollup("1.0.0", 9000, latenciesMs: LogNormalMs(Seeded(8), 1.5, 0.3, 9000));
        var slowAndFlipping = Rollup("1.1.0", 1000, latenciesMs: LogNormalMs(Seeded(9), 3.0, 0.3, 1000)) with { ShadowPairs = 1000, ShadowFlips = 300 };
        var d = Decide(slowAndFlipping, production);
        Assert.Equal(Verdict.Rollback, d.Verdict);
        Assert.StartsWith("candidate p95 latency", d.Reason);
        Assert.Null(d.Checks.FlipPValue);
    }

    [Fact]
    public void Decision_json_is_strict_and_round_trips()
    {
        var candidate = Rollup("1.1.0", 300, latenciesMs: Enumerable.Repeat(10_000.0, 300)); // p95 = overflow
        var d = Decide(candidate, Rollup("1.0.0", 2700));
        var json = LeptonJson.Serialize(d);
        var node = JsonNode.Parse(json)!.AsObject();
        Assert.Equal("rollback", node["verdict"]!.GetValue<string>()); // infinitely slower
        Assert.True(node["checks"]!.AsObject().ContainsKey("candidate_p95_ms"));
        Assert.Null(node["checks"]!["candidate_p95_ms"]); // infinite: past the last bucket bound
        var back = LeptonJson.Deserialize<CanaryDecision>(json);
        Assert.Equal(d.Verdict, back.Verdict);
        Assert.Equal(d.Reason, back.Reason);
        Assert.Equal(d.Checks.ErrorLogEValue, back.Checks.ErrorLogEValue);
    }

    [Fact]
    public void The_part_results_use_the_keys_they_have_in_the_checks()
    {
        var d = Decide(Rollup("1.1.0", 1000) with { ShadowPairs = 1000, ShadowFlips = 10 }, Rollup("1.0.0", 9000));
        var checks = Keys(d.Checks);
        var evidence = ErrorRateEvidence.Test(0, 1000, 0, 9000, Defaults);
        var flips = PairedStatistics.FlipRateTest(1000, 10, 0.05);
        Assert.Subset(checks, Keys(evidence));
        Assert.Subset(checks, Keys(flips));
        Assert.Equal(7, Keys(evidence).Count);
        Assert.Equal(7, Keys(flips).Count);
    }

    private static HashSet<string> Keys<T>(T value) => JsonNode.Parse(LeptonJson.Serialize(value))!.AsObject().Select(p => p.Key).ToHashSet();

    [Theory]
    [InlineData(Verdict.InsufficientEvidence, "insufficient_evidence")]
    [InlineData(Verdict.Invalid, "invalid")]
    [InlineData(Verdict.Promote, "promote")]
    public void Verdicts_are_written_in_snake_case(Verdict verdict, string json) =>
        Assert.Equal($"\"{json}\"", LeptonJson.Serialize(verdict));

    [Fact]
    public void A_bad_weight_or_policy_is_a_clear_error()
    {
        Assert.Contains("weight_bp", Assert.Throws<InvalidInputException>(() => Decide(Rollup("1.1.0", 10), null, weightBp: -5)).Message);
        Assert.Contains("thresholds.alpha", Assert.Throws<InvalidPolicyException>(() => Decide(Rollup("1.1.0", 10), null, thresholds: Defaults with { Alpha = 2 })).Message);
    }

    [Fact]
    public void Every_decision_reports_the_composite_score_of_both_versions()
    {
        var candidate = Rollup("1.1.0", 1000, errors: 10);
        var production = Rollup("1.0.0", 9000, errors: 9);
        var weights = new CompositeWeights { Latency = 0.4, Resource = 0.2, Error = 0.4 };
        var d = CanaryAnalysis.DecideCanaryStep(candidate, production, 1000, Defaults, finalStep: false, weights);
        Assert.Equal(CompositeScore.Of(candidate, weights), d.Checks.Composite!.Candidate);
        Assert.Equal(CompositeScore.Of(production, weights), d.Checks.Composite.Production);
        // 1% vs 0.1% errors, same latency and compute: the candidate scores worse (higher).
        Assert.True(d.Checks.Composite.Candidate.P > d.Checks.Composite.Production!.P);
        Assert.Throws<InvalidPolicyException>(() => CanaryAnalysis.DecideCanaryStep(
            candidate, production, 1000, Defaults, finalStep: false, new CompositeWeights { Latency = 0, Resource = 0, Error = 0 }));
    }

    [Fact]
    public void The_full_weight_step_promotes_without_fresh_production_traffic()
    {
        var idleProduction = Rollup("1.0.0", 0, routed: 0);
        Assert.Equal(Verdict.Promote, Decide(Rollup("1.1.0", 800, errors: 2), idleProduction, weightBp: 10_000, finalStep: true).Verdict);
        // Production totals carried over from earlier steps still expose a regression at 100%.
        var earlierProduction = Rollup("1.0.0", 5000, errors: 5, routed: 0);
        Assert.Equal(Verdict.Rollback, Decide(Rollup("1.1.0", 800, errors: 40), earlierProduction, weightBp: 10_000, finalStep: true).Verdict);
    }

    [Fact]
    public void The_production_reference_is_the_baseline_only_at_full_weight()
    {
        var window = Rollup("1.0.0", 900);
        var earlier = Rollup("1.0.0", 5000, routed: 5000);
        // Below 100% production is measured in the same window, the fairest comparison.
        Assert.Same(window, CanaryAnalysis.ProductionReference(window, earlier, weightBp: 5000));
        // At 100% production has no routed traffic: the earlier totals are what it is judged on.
        Assert.Same(earlier, CanaryAnalysis.ProductionReference(null, earlier, weightBp: 10_000));
        var pinned = Rollup("1.0.0", 3, routed: 0);
        Assert.Same(earlier, CanaryAnalysis.ProductionReference(pinned, earlier, weightBp: 10_000));
        // A baseline without requests proves nothing; the window (if any) is all there is.
        Assert.Same(pinned, CanaryAnalysis.ProductionReference(pinned, Rollup("1.0.0", 0), weightBp: 10_000));
        Assert.Null(CanaryAnalysis.ProductionReference(null, null, weightBp: 10_000));
    }

    [Fact]
    public void A_regression_at_full_weight_is_caught_only_with_a_baseline()
    {
        var failing = Rollup("1.1.0", 800, errors: 240);
        var noTraffic = Decide(failing, CanaryAnalysis.ProductionReference(null, null, 10_000), 10_000);
        Assert.Equal(Verdict.Continue, noTraffic.Verdict); // nothing to compare with: cannot fail
        var earlier = Rollup("1.0.0", 800, routed: 800);
        var judged = Decide(failing, CanaryAnalysis.ProductionReference(null, earlier, 10_000), 10_000);
        Assert.Equal(Verdict.Rollback, judged.Verdict);
        Assert.Contains("vs production 0% (0/800)", judged.Reason);
    }

    [Theory]
    [InlineData(0.0, "0%")]
    [InlineData(0.003, "0.3%")]
    [InlineData(0.0033333, "0.33%")]
    [InlineData(0.0018518, "0.19%")]
    [InlineData(0.01, "1%")]
    [InlineData(0.099, "9.9%")]
    [InlineData(0.2083333, "20.8%")]
    [InlineData(1.0, "100.0%")]
    [InlineData(0.0000123, "0.0012%")]
    [InlineData(0.000000123, "1.2e-05%")]
    public void Percentages_print_as_the_reference_prints_them(double rate, string expected) =>
        Assert.Equal(expected, CanaryAnalysis.FormatPercent(rate));
}
