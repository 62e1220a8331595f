using System.Globalization;
using Lepton.Shared.Metrics;
using Lepton.Shared.Policies;
using Lepton.Shared.Reports;
using Lepton.Shared.Statistics;

namespace Lepton.Shared.Lifecycle;

/// <summary>What a judged window is: a canary step (routed traffic) or the shadow phase (mirrored traffic).</summary>
public enum WindowKind
{
    Canary,
    Shadow,
}

/// <summary>Where the production totals a look was judged against came from.</summary>
public enum BaselineSource
{
    /// <summary>Production's own traffic in the same window (below 100 %, the fairest comparison).</summary>
    SameWindow,

    /// <summary>Production's traffic over the earlier steps of this rollout (a step at 100 %).</summary>
    EarlierSteps,

    /// <summary>Production's traffic before the switch to 100 % (a blue-green bake, a one-step canary).</summary>
    BeforeSwitch,
}

/// <summary>
/// The time range (unix seconds, <c>[Start, End)</c>) of production's traffic a step at 100 % is
/// judged against: at full weight production gets no routed traffic to compare with. Integers from
/// the orchestration clock only, so a replay passes the same range.
/// </summary>
public sealed record BaselineRange(long Start, long End, BaselineSource Source, string Description)
{
    /// <summary>
    /// The route generations whose rows count: the earlier steps' own (exact), or every one before
    /// the step's (before the switch); <c>null</c> = any (rows of the time range).
    /// </summary>
    public GenerationSelection? Generations { get; init; }

    /// <summary>
    /// After earlier steps: all of production's traffic since the first step began (the most
    /// evidence this rollout has, each of those steps passed with at least <c>min_requests</c>
    /// production requests). With none: the whole warm-up at 0 % and at least a window's length
    /// before the switch, plus the second in which it happened — production alone at full load,
    /// like the step to come; spanning the warm-up means the range holds rollups whenever
    /// production serves at all.
    /// </summary>
    public static BaselineRange For(long firstStepStart, long stepBegins, IReadOnlyList<int> earlierStepsBp, double windowS, long warmingFrom)
    {
        if (earlierStepsBp.Count > 0)
        {
            var weights = string.Join(", ", earlierStepsBp.Select(w => StepLabels.Percent(w) + "%"));
            var steps = earlierStepsBp.Count == 1 ? "step 1" : $"steps 1-{earlierStepsBp.Count}";
            return new BaselineRange(firstStepStart, stepBegins, BaselineSource.EarlierSteps, $"its own traffic during {steps} ({weights}) of this rollout");
        }
        var start = Math.Min(stepBegins - 1 - Math.Max((long)Math.Ceiling(windowS), 1), warmingFrom);
        return new BaselineRange(start, stepBegins, BaselineSource.BeforeSwitch, $"its traffic in the {stepBegins - start}s before the switch to 100%");
    }
}

/// <summary>The production totals a look was judged against, and how many requests they hold.</summary>
public sealed record BaselineUsed(long Start, long End, BaselineSource Source, string Description, long Requests);

/// <summary>
/// One look at a step: the rollups recorded under the step's route generation
/// (<see cref="Generation"/>; summed over replicas and windows by the caller) judged for
/// <see cref="Candidate"/> against <see cref="Production"/>. <c>[Start, End)</c> is the step's
/// clock: from when every live replica reported the generation to the look.
/// </summary>
public sealed record WindowRequest(
    string Model,
    string Candidate,
    string? Production,
    long Start,
    long End,
    int WeightBp,
    bool FinalStep,
    WindowKind Kind,
    Policy Policy,
    BaselineRange? Baseline)
{
    /// <summary>
    /// The generation of the step's routes: only rows recorded under it are the step's evidence,
    /// read from windows starting up to <see cref="WindowRollup.MaxWindowSeconds"/> before
    /// <see cref="Start"/> (a window straddling the change). 0: rows of <c>[Start, End)</c>, any generation.
    /// </summary>
    public long Generation { get; init; }

    /// <summary>The rows to read for the step's evidence.</summary>
    public (long Start, long End, GenerationSelection? Generations) Evidence() => Generation > 0
        ? (Start - WindowRollup.MaxWindowSeconds, End, GenerationSelection.Of(Generation))
        : (Start, End, null);
}

/// <summary>A look's verdict, the sentence a user reads, the statistics behind it and both versions' numbers.</summary>
public sealed record WindowJudgement(
    Verdict Verdict,
    string Reason,
    CanaryChecks Checks,
    WindowSummary Candidate,
    WindowSummary Production,
    CompositeComparison? Composite,
    BaselineUsed Baseline)
{
    /// <summary>Why the evidence was incomplete (a live replica's rollups missing or late); empty when it was complete.</summary>
    public IReadOnlyList<string> Gaps { get; init; } = [];

    /// <summary>When the look read the rollups (unix milliseconds, the activity's clock).</summary>
    public long JudgedAtMs { get; init; }
}

/// <summary>One look as the reports record it.</summary>
public sealed record StepRecord(
    int Step,
    int WeightBp,
    WindowKind Kind,
    Verdict Verdict,
    string Reason,
    WindowSummary Candidate,
    WindowSummary Production,
    CompositeComparison? Composite,
    BaselineUsed Baseline,
    CanaryChecks Checks)
{
    /// <summary>The route generation whose rows were judged (0: any).</summary>
    public long Generation { get; init; }

    /// <summary>Replicas whose rollups were missing or late at this look.</summary>
    public IReadOnlyList<string> Gaps { get; init; } = [];

    /// <summary>When the look read the rollups (unix milliseconds).</summary>
    public long JudgedAtMs { get; init; }

    public static StepRecord Of(int step, int weightBp, WindowKind kind, WindowJudgement judgement, long generation = 0) => new(
        step, weightBp, kind, judgement.Verdict, judgement.Reason, judgement.Candidate, judgement.Production,
        judgement.Composite, judgement.Baseline, judgement.Checks)
    {
        Generation = generation,
        Gaps = judgement.Gaps,
        JudgedAtMs = judgement.JudgedAtMs,
    };
}

/// <summary>
/// Judges one look at a canary step or the shadow phase from rollup totals (DESIGN §5): picks the
/// production totals (the same window, or at 100 % the baseline range when it saw traffic), runs
/// the statistics and says in the reason which baseline it was judged on. Evidence with gaps
/// (<see cref="EvidenceCompleteness"/>) is never a pass: a look that would pass is
/// <c>insufficient_evidence</c> instead. A rollback shown on the evidence there is stands (the
/// error test is valid on any part of the traffic, and rolling back is the safe direction).
/// Pure: the caller reads the totals.
/// </summary>
public static class WindowJudging
{
    /// <summary>Judges <paramref name="request"/> on the totals per version over its window (<paramref name="window"/>) and its baseline range (<paramref name="baseline"/>, when it has one).</summary>
    /// <param name="request">The look.</param>
    /// <param name="window">The step's totals per version.</param>
    /// <param name="baseline">Production's totals over the baseline range, when the request has one.</param>
    /// <param name="gaps">Why the evidence is incomplete (missing or late rollups); none when complete.</param>
    public static WindowJudgement Judge(
        WindowRequest request,
        IReadOnlyDictionary<string, WindowRollup> window,
        IReadOnlyDictionary<string, WindowRollup>? baseline,
        IReadOnlyList<string>? gaps = null)
    {
        var weights = request.Policy.CompositeWeights;
        var candidate = window.GetValueOrDefault(request.Candidate);
        var production = request.Production is { } p ? window.GetValueOrDefault(p) : null;
        WindowRollup? earlier = null;
        if (request.Baseline is not null && request.Production is not null && request.Kind == WindowKind.Canary && baseline is not null)
        {
            earlier = baseline.GetValueOrDefault(request.Production);
        }
        var judged = CanaryAnalysis.ProductionReference(production, earlier, request.WeightBp);
        var used = request.Baseline is { } asked && judged is not null && ReferenceEquals(judged, earlier)
            ? new BaselineUsed(asked.Start, asked.End, asked.Source, asked.Description, judged.Requests)
            : new BaselineUsed(request.Start, request.End, BaselineSource.SameWindow, SameWindow(request.Baseline is not null, production), production?.Requests ?? 0);
        CanaryDecision decision;
        if (request.Kind == WindowKind.Shadow)
        {
            decision = CanaryAnalysis.DecideShadow(
                candidate ?? WindowRollup.Empty(request.Model, request.Candidate, request.Start, 0),
                production ?? WindowRollup.Empty(request.Model, request.Production ?? "0.0.0", request.Start, 0),
                request.Policy.Thresholds,
                request.FinalStep,
                weights);
        }
        else
        {
            decision = CanaryAnalysis.DecideCanaryStep(candidate, judged, request.WeightBp, request.Policy.Thresholds, request.FinalStep, weights);
            if (used.Source != BaselineSource.SameWindow)
            {
                decision = decision with { Reason = $"{decision.Reason}; production baseline: {used.Description}" };
            }
        }
        // One source for the report's scores: the decision's own, computed with the policy's
        // weights (a decision that stopped before computing them gets them here).
        var composite = decision.Checks.Composite ?? (candidate is null ? null : CompositeComparison.Of(candidate, judged, weights));
        if (gaps is { Count: > 0 })
        {
            var incomplete = $"evidence incomplete: {string.Join("; ", gaps)}";
            decision = decision.Verdict switch
            {
                Verdict.Continue or Verdict.Promote => decision with { Verdict = Verdict.InsufficientEvidence, Reason = $"{incomplete}; the step extends (it would have passed: {decision.Reason})" },
                Verdict.InsufficientEvidence => decision with { Reason = $"{decision.Reason}; {incomplete}" },
                _ => decision,
            };
        }
        return new WindowJudgement(decision.Verdict, decision.Reason, decision.Checks, WindowSummary.Of(candidate), WindowSummary.Of(judged), composite, used)
        {
            Gaps = gaps ?? [],
        };
    }

    private static string SameWindow(bool baselineAsked, WindowRollup? production)
    {
        if (!baselineAsked)
        {
            return "its traffic in the same window";
        }
        return production is { Requests: > 0 }
            ? "its traffic in the same window (none in the baseline range)"
            : "no production traffic in the baseline range; nothing to compare with";
    }
}

/// <summary>What the lifecycle does after a look at a step.</summary>
public enum StepAction
{
    /// <summary>The window is still open and nothing was shown: look again at the next check interval.</summary>
    KeepLooking,

    /// <summary>The window closed with a pass: on to the next step (or promote after the last).</summary>
    Passed,

    /// <summary>Too little evidence: another window, counting on from the step's start.</summary>
    Extend,

    /// <summary>The window was invalid (routing did not do what it was told): another window, counting from now.</summary>
    ExtendAndRestart,

    /// <summary>A regression was shown, or the extensions ran out: take the candidate off traffic.</summary>
    RollBack,
}

/// <summary>The next action after a look, with the reason a user reads.</summary>
public sealed record StepDecision(StepAction Action, string Reason);

/// <summary>
/// The next action of a step (pure): a rollback verdict stops the step at any look (the error test
/// is always valid); a pass counts only when the window closes; <c>insufficient_evidence</c> and
/// <c>invalid</c> extend the step up to <c>max_extensions</c> times, then roll back rather than
/// pass on no data.
/// </summary>
public static class StepPolicy
{
    /// <param name="kind">Canary step or shadow phase (names the step in reasons).</param>
    /// <param name="weightBp">The step's candidate weight.</param>
    /// <param name="look">The judgement of the look just made.</param>
    /// <param name="windowClosed">Whether the step's window (or its extension) has ended.</param>
    /// <param name="extensions">Extensions the step has had before this look.</param>
    /// <param name="maxExtensions">The policy's bound on extensions.</param>
    public static StepDecision Next(WindowKind kind, int weightBp, WindowJudgement look, bool windowClosed, int extensions, int maxExtensions)
    {
        var label = StepLabels.For(kind, weightBp);
        if (look.Verdict == Verdict.Rollback)
        {
            return new StepDecision(StepAction.RollBack, $"{label}: {look.Reason}");
        }
        if (!windowClosed)
        {
            return new StepDecision(StepAction.KeepLooking, look.Reason);
        }
        if (look.Verdict is Verdict.Continue or Verdict.Promote)
        {
            return new StepDecision(StepAction.Passed, look.Reason);
        }
        var verdict = StepLabels.Wire(look.Verdict);
        if (extensions + 1 > maxExtensions)
        {
            return new StepDecision(StepAction.RollBack, $"{label}: {verdict} after {maxExtensions} extension(s): {look.Reason}");
        }
        var reason = $"{verdict}: extending the window ({extensions + 1}/{maxExtensions}): {look.Reason}";
        return new StepDecision(look.Verdict == Verdict.Invalid ? StepAction.ExtendAndRestart : StepAction.Extend, reason);
    }
}

/// <summary>How steps and verdicts are named in reasons.</summary>
public static class StepLabels
{
    /// <summary><c>canary at 50%</c>, or <c>shadow</c>.</summary>
    public static string For(WindowKind kind, int weightBp) => kind == WindowKind.Shadow ? "shadow" : $"canary at {Percent(weightBp)}%";

    /// <summary>Basis points as a percentage without trailing zeros: 5000 → 50, 50 → 0.5.</summary>
    public static string Percent(int basisPoints) => (basisPoints / 100.0).ToString("0.##", CultureInfo.InvariantCulture);

    /// <summary>A verdict's wire name (<c>insufficient_evidence</c>).</summary>
    public static string Wire(Verdict verdict) => System.Text.Json.JsonNamingPolicy.SnakeCaseLower.ConvertName(verdict.ToString());
}
