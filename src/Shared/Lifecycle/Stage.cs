using System.Collections.Frozen;
using System.Text.Json.Serialization;

namespace Lepton.Shared.Lifecycle;

/// <summary>
/// Where a version stands: <c>registered → validating → evaluating → [shadow] → canary →
/// production → superseded</c>; failures end in <c>rejected</c> (validation/evaluation) or
/// <c>rolled_back</c> (shadow/canary/after promotion). Stored and shown in snake_case.
/// </summary>
[JsonConverter(typeof(JsonStringEnumConverter<Stage>))]
public enum Stage
{
    [JsonStringEnumMemberName("registered")]
    Registered,

    [JsonStringEnumMemberName("validating")]
    Validating,

    [JsonStringEnumMemberName("evaluating")]
    Evaluating,

    [JsonStringEnumMemberName("shadow")]
    Shadow,

    [JsonStringEnumMemberName("canary")]
    Canary,

    [JsonStringEnumMemberName("production")]
    Production,

    [JsonStringEnumMemberName("superseded")]
    Superseded,

    [JsonStringEnumMemberName("rejected")]
    Rejected,

    [JsonStringEnumMemberName("rolled_back")]
    RolledBack,
}

/// <summary>
/// The version lifecycle as one state machine (DESIGN.md §3). Every stage change anywhere in
/// Lepton goes through <see cref="CheckTransition"/>, so an illegal move is an error, never a silent
/// overwrite. <c>rejected</c> and <c>rolled_back</c> are terminal; <c>superseded</c> is not, because
/// a rollback after promotion reinstates the previous production version.
/// </summary>
/// <remarks>
/// <c>rolled_back</c> means "traffic was taken off it", so only stages that carry traffic lead
/// there. A version stopped before it took any (an operator abort, or an approval that never came,
/// while it waits in <c>evaluating</c>) ends <c>rejected</c>: there is deliberately no
/// <c>evaluating → rolled_back</c> edge.
/// </remarks>
public static class StageMachine
{
    private static readonly FrozenDictionary<Stage, FrozenSet<Stage>> Transitions = new Dictionary<Stage, FrozenSet<Stage>>
    {
        [Stage.Registered] = Set(Stage.Validating, Stage.Rejected),
        [Stage.Validating] = Set(Stage.Evaluating, Stage.Rejected),
        // evaluating → production: the first version of a model has nothing to canary against.
        [Stage.Evaluating] = Set(Stage.Shadow, Stage.Canary, Stage.Production, Stage.Rejected),
        // shadow → production: an operator may promote straight from a shadow_only run.
        [Stage.Shadow] = Set(Stage.Canary, Stage.Production, Stage.RolledBack),
        [Stage.Canary] = Set(Stage.Production, Stage.RolledBack),
        [Stage.Production] = Set(Stage.Superseded, Stage.RolledBack),
        // superseded → production: a rollback after a promotion reinstates the previous version.
        [Stage.Superseded] = Set(Stage.Production),
        [Stage.Rejected] = Set(),
        [Stage.RolledBack] = Set(),
    }.ToFrozenDictionary();

    /// <summary>Stages a lifecycle can never leave.</summary>
    public static readonly FrozenSet<Stage> TerminalStages = Set(Stage.Rejected, Stage.RolledBack);

    /// <summary>Stages in which a lifecycle orchestration is still running; the reconciler resumes these.</summary>
    public static readonly FrozenSet<Stage> ActiveStages =
        Set(Stage.Registered, Stage.Validating, Stage.Evaluating, Stage.Shadow, Stage.Canary);

    /// <summary>Stages a version in the production route slot may be in.</summary>
    public static readonly FrozenSet<Stage> ProductionSlotStages = Set(Stage.Production);

    /// <summary>Stages a version in the candidate route slot may be in.</summary>
    public static readonly FrozenSet<Stage> CandidateSlotStages = Set(Stage.Canary, Stage.Production);

    /// <summary>Stages a version in the shadow route slot may be in.</summary>
    public static readonly FrozenSet<Stage> ShadowSlotStages = Set(Stage.Shadow, Stage.Canary);

    /// <summary>Stages from which pinned inference is allowed (evaluation on).</summary>
    public static readonly FrozenSet<Stage> ServableStages =
        Set(Stage.Evaluating, Stage.Shadow, Stage.Canary, Stage.Production, Stage.Superseded);

    public static bool IsTerminal(Stage stage) => TerminalStages.Contains(stage);

    public static IReadOnlySet<Stage> AllowedNext(Stage stage) => Transitions[stage];

    /// <summary>Returns <paramref name="target"/> when <c>current → target</c> is allowed; otherwise throws.</summary>
    public static Stage CheckTransition(Stage current, Stage target)
    {
        if (!Transitions[current].Contains(target))
        {
            var allowed = Transitions[current].Count == 0
                ? "none (terminal)"
                : string.Join(", ", Transitions[current].Select(StageNames.ToWire).Order(StringComparer.Ordinal));
            throw new IllegalTransitionException(
                $"cannot move a version from '{StageNames.ToWire(current)}' to '{StageNames.ToWire(target)}'; "
                + $"allowed from '{StageNames.ToWire(current)}': {allowed}");
        }
        return target;
    }

    private static FrozenSet<Stage> Set(params Stage[] stages) => stages.ToFrozenSet();
}

/// <summary>The wire names of <see cref="Stage"/> (snake_case), written once.</summary>
public static class StageNames
{
    private static readonly FrozenDictionary<Stage, string> Names = new Dictionary<Stage, string>
    {
        [Stage.Registered] = "registered",
        [Stage.Validating] = "validating",
        [Stage.Evaluating] = "evaluating",
        [Stage.Shadow] = "shadow",
        [Stage.Canary] = "canary",
        [Stage.Production] = "production",
        [Stage.Superseded] = "superseded",
        [Stage.Rejected] = "rejected",
        [Stage.RolledBack] = "rolled_back",
    }.ToFrozenDictionary();

    private static readonly FrozenDictionary<string, Stage> ByName =
        Names.ToFrozenDictionary(pair => pair.Value, pair => pair.Key, StringComparer.Ordinal);

    public static string ToWire(Stage stage) => Names[stage];

    public static Stage Parse(string? text)
    {
        if (text is not null && ByName.TryGetValue(text, out var stage))
        {
            return stage;
        }
        throw new InvalidInputException(
            $"unknown stage {ModelName.Quote(text)}: expected one of {string.Join(", ", Names.Values)}");
    }
}
