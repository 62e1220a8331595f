using System.Text.Json.Nodes;
using Lepton.Shared.Lifecycle;
using Lepton.Shared.Metrics;
using Lepton.Shared.Policies;
using Lepton.Shared.Statistics;

namespace Lepton.Shared.Tests.Lifecycle;

/// <summary>Judging a look from rollup totals (baseline choice, the reason a user reads) and the next action of a step.</summary>
public sealed class WindowJudgingTests
{
    private static readonly Policy Policy = PolicyResolver.Resolve(new JsonObject
    {
        // Far from the defaults (0.5, 0.2, 0.3), so a score computed with the defaults shows.
        ["composite_weights"] = new JsonObject { ["latency"] = 0.1, ["resource"] = 0.1, ["error"] = 0.8 },
        ["thresholds"] = new JsonObject { ["min_requests"] = 50 },
    });

    private static WindowRollup Rollup(string version, long start, long requests, long errors = 0, long? routed = null, double latencyMs = 4.0, long pairs = 0)
    {
        var buckets = new long[LatencyHistogram.Count];
        buckets[LatencyHistogram.IndexOf(latencyMs)] = requests;
        var bins = new long[WindowRollup.ScoreBins];
        bins[^1] = requests;
        return new WindowRollup
        {
            Model = "digits",
            Version = version,
            Replica = "r1",
            WindowStart = start,
            WindowSeconds = 1,
            Requests = requests,
            RoutedRequests = routed ?? requests,
            Errors = errors,
            Rows = requests,
            LatencyBuckets = buckets,
            LatencySumMs = latencyMs * requests,
            ComputeMs = 0.1 * requests,
            ScoreBinCounts = bins,
            ShadowPairs = pairs,
        };
    }

    private static Dictionary<string, WindowRollup> Totals(params WindowRollup[] rollups) =>
        rollups.GroupBy(r => r.Version).ToDictionary(g => g.Key, g => WindowRollup.Sum(g)!);

    private static WindowRequest Request(WindowKind kind, int weightBp, long start, long end, BaselineRange? baseline = null) =>
        new("digits", "1.0.1", "1.0.0", start, end, weightBp, false, kind, Policy, baseline);

    [Theory]
    [InlineData(WindowKind.Canary)]
    [InlineData(WindowKind.Shadow)]
    public void The_decision_and_the_report_use_the_policys_composite_weights(WindowKind kind)
    {
        var candidate = Rollup("1.0.1", 1000, 500, errors: 2, pairs: kind == WindowKind.Shadow ? 500 : 0);
        var window = Totals(candidate, Rollup("1.0.0", 1000, 500, errors: 1));

        var judgement = WindowJudging.Judge(Request(kind, kind == WindowKind.Shadow ? 0 : 5000, 1000, 1001), window, null);

        var expected = CompositeScore.Of(candidate, new CompositeWeights { Latency = 0.1, Resource = 0.1, Error = 0.8 });
        Assert.Equal(expected.P, judgement.Composite!.Candidate.P, 12);
        Assert.Same(judgement.Checks.Composite, judgement.Composite);
        Assert.Equal(BaselineSource.SameWindow, judgement.Baseline.Source);
        Assert.Equal("its traffic in the same window", judgement.Baseline.Description);
    }

    [Fact]
    public void A_step_at_full_weight_is_judged_against_the_earlier_steps_baseline()
    {
        var baselineRange = new BaselineRange(1000, 1002, BaselineSource.EarlierSteps, "its own traffic during step 1 (50%) of this rollout");
        var baseline = Totals(Rollup("1.0.0", 1000, 800), Rollup("1.0.1", 1000, 800)); // step 1 at 50 %
        var window = Totals(Rollup("1.0.1", 1002, 800, errors: 240)); // 100 %: production gets nothing

        var judgement = WindowJudging.Judge(Request(WindowKind.Canary, 10000, 1002, 1003, baselineRange), window, baseline);

        Assert.Equal(Verdict.Rollback, judgement.Verdict);
        Assert.Contains("vs production 0% (0/800)", judgement.Reason, StringComparison.Ordinal);
        Assert.EndsWith("; production baseline: its own traffic during step 1 (50%) of this rollout", judgement.Reason, StringComparison.Ordinal);
        Assert.Equal(new BaselineUsed(1000, 1002, BaselineSource.EarlierSteps, baselineRange.Description, 800), judgement.Baseline);
        Assert.Equal(800, judgement.Production.Requests);
        Assert.True(judgement.Composite!.Production!.P < judgement.Composite.Candidate.P);
    }

    [Fact]
    public void Without_baseline_traffic_the_window_itself_is_used_and_the_reason_says_so()
    {
        var range = new BaselineRange(1000, 1002, BaselineSource.BeforeSwitch, "x");
        var judgement = WindowJudging.Judge(Request(WindowKind.Canary, 10000, 1002, 1003, range), Totals(Rollup("1.0.1", 1002, 800)), Totals());

        Assert.Equal(new BaselineUsed(1002, 1003, BaselineSource.SameWindow, "no production traffic in the baseline range; nothing to compare with", 0), judgement.Baseline);
        Assert.Equal(Verdict.Continue, judgement.Verdict);
        Assert.DoesNotContain("production baseline", judgement.Reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Below_full_weight_the_baseline_is_never_used()
    {
        var range = new BaselineRange(900, 1000, BaselineSource.EarlierSteps, "earlier");
        var window = Totals(Rollup("1.0.1", 1000, 400), Rollup("1.0.0", 1000, 400));
        var judgement = WindowJudging.Judge(Request(WindowKind.Canary, 5000, 1000, 1001, range), window, Totals(Rollup("1.0.0", 900, 9000)));

        Assert.Equal(BaselineSource.SameWindow, judgement.Baseline.Source);
        Assert.Equal("its traffic in the same window (none in the baseline range)", judgement.Baseline.Description);
        Assert.Equal(400, judgement.Production.Requests);
    }

    [Fact]
    public void No_candidate_traffic_is_insufficient_evidence_without_a_score()
    {
        var judgement = WindowJudging.Judge(Request(WindowKind.Canary, 100, 1000, 1001), Totals(Rollup("1.0.0", 1000, 400)), null);
        Assert.Equal(Verdict.InsufficientEvidence, judgement.Verdict);
        Assert.Null(judgement.Composite);
        Assert.Equal(0, judgement.Candidate.Requests);
    }

    [Fact]
    public void The_baseline_range_before_a_switch_spans_the_warm_up_and_a_window()
    {
        var earlier = BaselineRange.For(firstStepStart: 1000, stepBegins: 1010, earlierStepsBp: [100, 500], windowS: 5, warmingFrom: 990);
        Assert.Equal(new BaselineRange(1000, 1010, BaselineSource.EarlierSteps, "its own traffic during steps 1-2 (1%, 5%) of this rollout"), earlier);
        var one = BaselineRange.For(1000, 1010, [5000], 5, 990);
        Assert.Equal("its own traffic during step 1 (50%) of this rollout", one.Description);
        // No earlier step: at least a window (and the switch's second) before the switch, and the whole warm-up.
        var shortWarmUp = BaselineRange.For(1010, 1010, [], windowS: 2.5, warmingFrom: 1008);
        Assert.Equal(new BaselineRange(1006, 1010, BaselineSource.BeforeSwitch, "its traffic in the 4s before the switch to 100%"), shortWarmUp);
        var longWarmUp = BaselineRange.For(1010, 1010, [], windowS: 1, warmingFrom: 900);
        Assert.Equal(900, longWarmUp.Start);
    }

    private static WindowJudgement Look(Verdict verdict, string reason = "why") => new(
        verdict, reason, new CanaryChecks(), Shared.Reports.WindowSummary.Empty, Shared.Reports.WindowSummary.Empty, null,
        new BaselineUsed(0, 1, BaselineSource.SameWindow, "", 0));

    [Fact]
    public void A_rollback_stops_the_step_at_any_look()
    {
        var next = StepPolicy.Next(WindowKind.Canary, 500, Look(Verdict.Rollback, "error rate up"), windowClosed: false, extensions: 0, maxExtensions: 3);
        Assert.Equal(new StepDecision(StepAction.RollBack, "canary at 5%: error rate up"), next);
        Assert.Equal("shadow: x", StepPolicy.Next(WindowKind.Shadow, 0, Look(Verdict.Rollback, "x"), false, 0, 3).Reason);
    }

    [Fact]
    public void A_pass_counts_only_when_the_window_closes()
    {
        Assert.Equal(StepAction.KeepLooking, StepPolicy.Next(WindowKind.Canary, 500, Look(Verdict.Continue), windowClosed: false, 0, 3).Action);
        Assert.Equal(StepAction.KeepLooking, StepPolicy.Next(WindowKind.Canary, 500, Look(Verdict.InsufficientEvidence), windowClosed: false, 0, 3).Action);
        Assert.Equal(StepAction.Passed, StepPolicy.Next(WindowKind.Canary, 500, Look(Verdict.Continue), windowClosed: true, 0, 3).Action);
        Assert.Equal(StepAction.Passed, StepPolicy.Next(WindowKind.Canary, 10000, Look(Verdict.Promote), windowClosed: true, 0, 3).Action);
    }

    [Fact]
    public void Short_evidence_extends_up_to_the_bound_and_an_invalid_window_restarts_the_counting()
    {
        var extend = StepPolicy.Next(WindowKind.Canary, 5000, Look(Verdict.InsufficientEvidence, "too few"), true, extensions: 1, maxExtensions: 2);
        Assert.Equal(new StepDecision(StepAction.Extend, "insufficient_evidence: extending the window (2/2): too few"), extend);
        var restart = StepPolicy.Next(WindowKind.Canary, 5000, Look(Verdict.Invalid, "srm"), true, extensions: 0, maxExtensions: 2);
        Assert.Equal(StepAction.ExtendAndRestart, restart.Action);
        var exhausted = StepPolicy.Next(WindowKind.Canary, 5000, Look(Verdict.InsufficientEvidence, "too few"), true, extensions: 2, maxExtensions: 2);
        Assert.Equal(new StepDecision(StepAction.RollBack, "canary at 50%: insufficient_evidence after 2 extension(s): too few"), exhausted);
        Assert.Equal(StepAction.RollBack, StepPolicy.Next(WindowKind.Canary, 5000, Look(Verdict.Invalid), true, extensions: 0, maxExtensions: 0).Action);
    }

    [Fact]
    public void Labels_name_steps_as_a_user_reads_them()
    {
        Assert.Equal(["canary at 0.01%", "canary at 0.5%", "canary at 1%", "canary at 100%", "shadow"],
            new[] { StepLabels.For(WindowKind.Canary, 1), StepLabels.For(WindowKind.Canary, 50), StepLabels.For(WindowKind.Canary, 100), StepLabels.For(WindowKind.Canary, 10000), StepLabels.For(WindowKind.Shadow, 0) });
        Assert.Equal("insufficient_evidence", StepLabels.Wire(Verdict.InsufficientEvidence));
    }
}
