using System.Text.Json.Nodes;
using Lepton.Shared.Models;
using Lepton.Shared.Registry;
using Lepton.Shared.Reports;
using Lepton.Shared.Rollout;

namespace Lepton.Functions.Lifecycle.Activities;

/// <summary>Makes the version production (stage and all traffic); the previous production becomes superseded.</summary>
public sealed class PromoteActivity(RolloutOperations rollout) : LeptonActivity<PromoteInput, PromoteResult>
{
    public override async Task<PromoteResult> ExecuteAsync(PromoteInput input, CancellationToken cancellationToken) =>
        new(await rollout.PromoteAsync(input.Model, input.Version, input.ExpectedFrom, input.Reason, input.Actor, cancellationToken));
}

/// <summary>Marks the version rolled back (before traffic: rejected) and takes it off traffic.</summary>
public sealed class RollbackActivity(RolloutOperations rollout, ModelRegistry registry) : LeptonActivity<RollbackInput, RollbackResult>
{
    public override async Task<RollbackResult> ExecuteAsync(RollbackInput input, CancellationToken cancellationToken)
    {
        var record = await rollout.RollbackAsync(input.Model, input.Version, input.Reason, input.Actor, cancellationToken);
        return new RollbackResult(record.Stage, (await registry.GetRoutesAsync(input.Model, cancellationToken)).Generation);
    }
}

/// <summary>Undoes a promotion during the bake: the previous version serves again, this one is rolled back.</summary>
public sealed class ReinstateActivity(RolloutOperations rollout) : LeptonActivity<ReinstateInput, ReinstateResult>
{
    public override async Task<ReinstateResult> ExecuteAsync(ReinstateInput input, CancellationToken cancellationToken)
    {
        await rollout.ReinstateAsync(input.Model, input.Version, input.Previous, input.Reason, input.Actor, cancellationToken);
        return new ReinstateResult(input.Previous);
    }
}

/// <summary>Writes <c>reports/{model}/{version}/{stage}.json</c> and, with looks to show, the PNG plot of them.</summary>
public sealed class ReportActivity(ModelStore store) : LeptonActivity<ReportInput, ReportResult>
{
    public override async Task<ReportResult> ExecuteAsync(ReportInput input, CancellationToken cancellationToken)
    {
        var body = new JsonObject
        {
            ["policy"] = StageReports.ToNode(input.Policy),
            ["production"] = input.Production,
            // DESIGN §5: the composite score of both versions, from the deciding look.
            ["composite"] = StageReports.ToNode(input.Steps.Count > 0 ? input.Steps[^1].Composite : null) ?? new JsonObject(),
            ["steps"] = StageReports.ToNode(input.Steps),
        };
        if (input.TrafficOff is { } off)
        {
            body["traffic_off"] = StageReports.ToNode(off);
        }
        var document = StageReports.Document(input.Model, input.Version, input.Stage, input.Outcome, input.Reason, body);
        var json = await store.PutReportAsync(input.Model, input.Version, input.Stage, document, cancellationToken);
        string? png = null;
        if (input.Steps.Count > 0)
        {
            var points = input.Steps.Select(s => new PlotStep(s.Step, s.WeightBp, s.Candidate, s.Production)).ToList();
            png = await store.PutReportPngAsync(input.Model, input.Version, input.Stage, ReportPlots.Png(input.Model, input.Version, input.Stage, points), cancellationToken);
        }
        return new ReportResult(json, png);
    }
}

/// <summary>Superseded versions no route references any more: the workers may unload them.</summary>
public sealed class RetireActivity(RolloutOperations rollout) : LeptonActivity<RetireInput, RetireResult>
{
    public override async Task<RetireResult> ExecuteAsync(RetireInput input, CancellationToken cancellationToken) =>
        new(await rollout.RetireSupersededAsync(input.Model, cancellationToken));
}
