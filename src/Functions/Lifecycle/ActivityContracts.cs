using System.Text.Json.Nodes;
using Lepton.Shared.Evaluation;
using Lepton.Shared.Lifecycle;
using Lepton.Shared.Models;
using Lepton.Shared.Policies;
using Lepton.Shared.Registry;

namespace Lepton.Functions.Lifecycle;

// Inputs and results of the lifecycle activities. A domain outcome (a model refused, a slot held)
// is a field of the result, never an exception, so it is not retried; activities throw for faults.

public sealed record RegisterInput(string Model, string Version, string Sha256, string InstanceId, string Actor);

/// <summary>The version's stage, or why this run may not touch it (a different file registered under the version).</summary>
public sealed record RegisterResult(Stage? Stage, string? Refusal);

public sealed record ValidateInput(string Model, string Version, JsonObject Overrides, string Actor);

/// <summary>The resolved policy and rollout plan of a version that passed, or the rejection.</summary>
public sealed record ValidateResult
{
    public string? Rejection { get; init; }

    public Signature? Signature { get; init; }

    public Policy? Policy { get; init; }

    public RolloutPlan? Plan { get; init; }

    public string? Production { get; init; }

    public ModelTask Task { get; init; }

    public string? Dataset { get; init; }

    public static ValidateResult Rejected(string reason) => new() { Rejection = reason };
}

public sealed record TransitionInput(string Model, string Version, Stage To, Stage? ExpectedFrom, string Reason, string Actor, JsonObject? Details = null);

public sealed record TransitionResult(Stage Stage);

public sealed record EvaluateShardInput(string Model, string Version, string Dataset, ModelTask Task, int Shard, int Shards);

/// <summary>One shard's statistics, or why the model cannot be evaluated on the dataset.</summary>
public sealed record EvaluateShardResult(ShardResult? Result, string? Rejection);

public sealed record CompareInput(
    string Model,
    string Version,
    Policy Policy,
    IReadOnlyList<ShardResult> Candidate,
    IReadOnlyList<ShardResult> Production,
    string? ProductionVersion);

/// <summary>The evaluation gate's verdict and both versions' summaries (also stored as the evaluation report).</summary>
public sealed record CompareResult(bool Passed, string Reason, EvaluationSummary Candidate, EvaluationSummary? Production);

public sealed record SlotInput(string Model, string Version);

/// <summary>Another version holding the rollout slot, if any, and the current production version.</summary>
public sealed record SlotResult(string? Other, string? Production);

public sealed record WarmStatusInput(string Model, string Version, double MaxAgeS);

public sealed record WarmStatusResult(bool Ready, IReadOnlyList<string> Live, IReadOnlyList<string> Missing);

public sealed record SetTrafficInput(
    string Model,
    string Owner,
    string? Candidate,
    int CandidateWeightBp,
    string? Shadow,
    int ShadowFractionBp,
    string Reason,
    string Actor)
{
    /// <summary>Write the routes under a new generation even when the traffic is unchanged (a step restarts its evidence).</summary>
    public bool NewGeneration { get; init; }
}

public sealed record RoutesAppliedInput(string Model, long Generation, double MaxAgeS);

/// <summary>Whether every live replica serving the model applies route generation ≥ the one asked for, and which do not yet.</summary>
public sealed record RoutesAppliedResult(bool Applied, IReadOnlyList<string> Live, IReadOnlyList<string> Lagging);

/// <summary>The routes' generation after the change, or why the change was refused (e.g. another version holds the slot).</summary>
public sealed record SetTrafficResult(long Generation, string? Refusal);

// The window-judging activity takes a WindowRequest and returns a WindowJudgement (Lepton.Shared.Lifecycle).

public sealed record PromoteInput(string Model, string Version, Stage ExpectedFrom, string Reason, string Actor);

public sealed record PromoteResult(string? Previous);

public sealed record RollbackInput(string Model, string Version, string Reason, string Actor);

/// <summary>The stage the version ended in (<c>rolled_back</c>, or <c>rejected</c> before traffic) and the routes' generation after it.</summary>
public sealed record RollbackResult(Stage Stage, long Generation);

/// <summary>When every live replica applied the routes that took a candidate off traffic (the fast-rollback figure).</summary>
/// <param name="Generation">The routes' generation after the rollback.</param>
/// <param name="AfterS">Seconds from the rollback's writes to the look that saw every live replica apply it (or the bound).</param>
/// <param name="Replicas">The live replicas.</param>
/// <param name="Lagging">Those that had not applied it by the bound (none when confirmed).</param>
public sealed record TrafficOff(long Generation, double AfterS, IReadOnlyList<string> Replicas, IReadOnlyList<string> Lagging);

public sealed record ReinstateInput(string Model, string Version, string Previous, string Reason, string Actor);

public sealed record ReinstateResult(string Reinstated);

/// <summary>A shadow or canary report: the phase's looks and what the run ended with.</summary>
public sealed record ReportInput(
    string Model,
    string Version,
    string Stage,
    string Outcome,
    string Reason,
    IReadOnlyList<StepRecord> Steps,
    Policy Policy,
    string? Production)
{
    /// <summary>After a rollback: when its routes were in force on every replica.</summary>
    public TrafficOff? TrafficOff { get; init; }
}

public sealed record ReportResult(string Json, string? Png);

public sealed record RetireInput(string Model);

public sealed record RetireResult(IReadOnlyList<string> Unloadable);
