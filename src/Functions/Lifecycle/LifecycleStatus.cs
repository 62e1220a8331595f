using Lepton.Shared.Lifecycle;
using Lepton.Shared.Policies;

namespace Lepton.Functions.Lifecycle;

/// <summary>
/// The orchestration's custom status, what <c>lepton status</c>, the version detail route and the
/// dashboard show: where the version is, the step and weight, the last decision and its reason,
/// and what it waits for.
/// </summary>
public sealed record LifecycleStatus
{
    public required string Model { get; init; }

    public required string Version { get; init; }

    public Stage Stage { get; init; } = Stage.Registered;

    public LifecyclePhase Phase { get; init; } = LifecyclePhase.Registering;

    /// <summary>Canary step (1-based) and how many there are; 0 before the first.</summary>
    public int Step { get; init; }

    public int Steps { get; init; }

    public int WeightBp { get; init; }

    public int ShadowFractionBp { get; init; }

    /// <summary>The verdict of the last look (<c>continue</c>, <c>insufficient_evidence</c>…).</summary>
    public string? Decision { get; init; }

    public string Reason { get; init; } = "";

    /// <summary>What the run waits for, in words; <c>null</c> while it works.</summary>
    public string? WaitingFor { get; init; }

    public RolloutPlan? Plan { get; init; }

    /// <summary>Live worker replicas that reported the candidate warm.</summary>
    public IReadOnlyList<string> Replicas { get; init; } = [];

    public OperatorCommand? LastCommand { get; init; }

    /// <summary>Set when the run has ended.</summary>
    public string? Outcome { get; init; }
}
