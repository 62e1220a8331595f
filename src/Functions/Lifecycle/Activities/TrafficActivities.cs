using Lepton.Shared;
using Lepton.Shared.Lifecycle;
using Lepton.Shared.Metrics;
using Lepton.Shared.Rollout;
using Lepton.Shared.Workers;

namespace Lepton.Functions.Lifecycle.Activities;

/// <summary>Another version of the model in shadow or canary (only one may hold the slot), and the production version.</summary>
public sealed class CheckSlotActivity(RolloutOperations rollout) : LeptonActivity<SlotInput, SlotResult>
{
    public override async Task<SlotResult> ExecuteAsync(SlotInput input, CancellationToken cancellationToken) => new(
        await rollout.VersionInRolloutAsync(input.Model, input.Version, cancellationToken),
        await rollout.ProductionVersionAsync(input.Model, besides: input.Version, cancellationToken));
}

/// <summary>Whether every live worker replica reports the version ready.</summary>
public sealed class WarmStatusActivity(WorkerDirectory workers, TimeProvider time) : LeptonActivity<WarmStatusInput, WarmStatusResult>
{
    public override async Task<WarmStatusResult> ExecuteAsync(WarmStatusInput input, CancellationToken cancellationToken)
    {
        var status = await workers.WarmStatusAsync(input.Model, input.Version, time.GetUtcNow(), TimeSpan.FromSeconds(input.MaxAgeS), cancellationToken);
        return new WarmStatusResult(status.Ready, status.LiveReplicas, status.Missing);
    }
}

/// <summary>Points the candidate and shadow slots on behalf of this version; a slot another version holds is refused.</summary>
public sealed class SetTrafficActivity(RolloutOperations rollout) : LeptonActivity<SetTrafficInput, SetTrafficResult>
{
    public override async Task<SetTrafficResult> ExecuteAsync(SetTrafficInput input, CancellationToken cancellationToken)
    {
        try
        {
            var routes = await rollout.SetTrafficAsync(
                input.Model, input.Owner, input.Candidate, input.CandidateWeightBp, input.Shadow, input.ShadowFractionBp, input.Reason, input.Actor,
                input.NewGeneration, cancellationToken);
            return new SetTrafficResult(routes.Generation, null);
        }
        catch (LeptonException error) when (IsRefusal(error))
        {
            return new SetTrafficResult(0, error.Message);
        }
    }
}

/// <summary>Whether every live replica applies a route generation (a step's clock starts then; a rollback is in force then).</summary>
public sealed class RoutesAppliedActivity(WorkerDirectory workers, TimeProvider time) : LeptonActivity<RoutesAppliedInput, RoutesAppliedResult>
{
    public override async Task<RoutesAppliedResult> ExecuteAsync(RoutesAppliedInput input, CancellationToken cancellationToken)
    {
        var live = (await workers.LiveAsync(time.GetUtcNow(), TimeSpan.FromSeconds(input.MaxAgeS), cancellationToken))
            .Where(h => h.Serves(input.Model))
            .OrderBy(h => h.Replica, StringComparer.Ordinal)
            .ToList();
        var lagging = live.Where(h => h.RouteGenerations.GetValueOrDefault(input.Model) < input.Generation).Select(h => h.Replica).ToList();
        return new RoutesAppliedResult(live.Count > 0 && lagging.Count == 0, live.Select(h => h.Replica).ToList(), lagging);
    }
}

/// <summary>
/// Sums the step's metric rollups (the rows of its route generation) over replicas and windows,
/// checks that every replica that served during the step is in them and up to date, and judges
/// candidate against production.
/// </summary>
public sealed class DecideWindowActivity(MetricsStore metrics, WorkerDirectory workers, TimeProvider time) : LeptonActivity<WindowRequest, WindowJudgement>
{
    public override async Task<WindowJudgement> ExecuteAsync(WindowRequest input, CancellationToken cancellationToken)
    {
        var now = time.GetUtcNow();
        var (start, end, generations) = input.Evidence();
        var rows = await metrics.ReadStoredAsync(input.Model, start, end, generations, cancellationToken);
        IReadOnlyDictionary<string, WindowRollup>? baseline = null;
        if (input.Baseline is { } range && input.Production is not null && input.Kind == WindowKind.Canary)
        {
            // Exact generations (the earlier steps) may have rows in windows that began before the
            // range; a selection "before the switch" is bounded by the range itself.
            var exact = range.Generations is { Only.Count: > 0 };
            baseline = await metrics.TotalsAsync(
                input.Model, exact ? range.Start - WindowRollup.MaxWindowSeconds : range.Start, exact ? input.End : range.End, range.Generations, cancellationToken);
        }
        var gaps = input.Generation > 0
            ? EvidenceCompleteness.Gaps(
                input.Model, input.Generation, DateTimeOffset.FromUnixTimeSeconds(input.Start), now, TimeSpan.FromSeconds(input.Policy.HeartbeatMaxAgeS),
                await workers.AllAsync(cancellationToken), rows)
            : [];
        return WindowJudging.Judge(input, MetricsStore.Totals(rows.Select(r => r.Rollup)), baseline, gaps) with { JudgedAtMs = now.ToUnixTimeMilliseconds() };
    }
}
