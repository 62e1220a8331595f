using System.Text.Json.Nodes;
using Lepton.Shared;
using Lepton.Shared.Evaluation;
using Lepton.Shared.Lifecycle;
using Lepton.Shared.Models;
using Lepton.Shared.Registry;
using Lepton.Shared.Reports;
using Lepton.Shared.Statistics;

namespace Lepton.Functions.Lifecycle.Activities;

/// <summary>Evaluates one version on one shard of the model's dataset.</summary>
public sealed class EvaluateShardActivity(ModelStore store, ModelRegistry registry) : LeptonActivity<EvaluateShardInput, EvaluateShardResult>
{
    public override async Task<EvaluateShardResult> ExecuteAsync(EvaluateShardInput input, CancellationToken cancellationToken)
    {
        try
        {
            var record = await registry.GetVersionAsync(input.Model, input.Version, cancellationToken);
            var path = await store.GetVerifiedModelPathAsync(input.Model, input.Version, record.Sha256, cancellationToken);
            var model = await File.ReadAllBytesAsync(path, cancellationToken);
            var dataset = await store.GetDatasetAsync(input.Model, input.Dataset, cancellationToken);
            Failpoints.Hit(Failpoints.DuringEvaluation);
            return new EvaluateShardResult(ShardEvaluator.Evaluate(model, dataset, input.Task, input.Shard, input.Shards), null);
        }
        catch (LeptonException error) when (IsRefusal(error))
        {
            return new EvaluateShardResult(null, $"{input.Version}: {error.Message}");
        }
    }
}

/// <summary>Merges the shard results, gates candidate against production and stores the evaluation report.</summary>
public sealed class CompareActivity(ModelStore store, ModelRegistry registry) : LeptonActivity<CompareInput, CompareResult>
{
    public const string ReportStage = "evaluation";

    public override async Task<CompareResult> ExecuteAsync(CompareInput input, CancellationToken cancellationToken)
    {
        var weights = input.Policy.CompositeWeights;
        var candidate = ShardResult.Merge(input.Candidate);
        var production = input.Production.Count > 0 ? ShardResult.Merge(input.Production) : null;
        var candidateSummary = EvaluationSummary.Of(candidate);
        var productionSummary = production is null ? null : EvaluationSummary.Of(production);
        var gate = EvaluationGating.Judge(candidateSummary, productionSummary, input.Policy.Evaluation);
        var summary = new EvaluationReport(
            candidateSummary,
            productionSummary,
            input.ProductionVersion,
            // DESIGN §5: every report scores every version it covers.
            new CompositeComparison(EvaluationComposite.Of(candidate, weights), production is null ? null : EvaluationComposite.Of(production, weights)),
            gate.Passed,
            gate.Reasons,
            gate.Reason);
        var body = (JsonObject)StageReports.ToNode(summary)!;
        await registry.AnnotateAsync(input.Model, input.Version, evaluation: body, cancellationToken: cancellationToken);
        await store.PutReportAsync(
            input.Model,
            input.Version,
            ReportStage,
            StageReports.Document(input.Model, input.Version, ReportStage, gate.Passed ? "passed" : "failed", gate.Reason, body),
            cancellationToken);
        return new CompareResult(gate.Passed, gate.Reason, candidateSummary, productionSummary);
    }

    /// <summary>The evaluation summary stored on the version row and in <c>evaluation.json</c>.</summary>
    public sealed record EvaluationReport(
        EvaluationSummary Candidate,
        EvaluationSummary? Production,
        string? ProductionVersion,
        CompositeComparison Composite,
        bool Passed,
        IReadOnlyList<string> Reasons,
        string Reason);
}
