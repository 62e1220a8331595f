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
                input.Model, input.Owner, input.Candidate, input.CandidateWeightBp, input.Shadow, input.ShadowFractionBp, input.Reason, input.Actor, cancellationToken);
            return new SetTrafficResult(routes.Generation, null);
        }
        catch (LeptonException error) when (IsRefusal(error))
        {
            return new SetTrafficResult(0, error.Message);
        }
    }
}

/// <summary>Sums the window's metric rollups over replicas and windows and judges candidate against production.</summary>
public sealed class DecideWindowActivity(MetricsStore metrics) : LeptonActivity<WindowRequest, WindowJudgement>
{
    public override async Task<WindowJudgement> ExecuteAsync(WindowRequest input, CancellationToken cancellationToken)
    {
        var window = await metrics.TotalsAsync(input.Model, input.Start, input.End, cancellationToken);
        IReadOnlyDictionary<string, WindowRollup>? baseline = null;
        if (input.Baseline is { } range && input.Production is not null && input.Kind == WindowKind.Canary)
        {
            baseline = await metrics.TotalsAsync(input.Model, range.Start, range.End, cancellationToken);
        }
        return WindowJudging.Judge(input, window, baseline);
    }
}
