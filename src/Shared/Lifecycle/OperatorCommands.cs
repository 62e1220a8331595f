using System.Collections.Frozen;

namespace Lepton.Shared.Lifecycle;

/// <summary>The operator actions one lifecycle command can carry.</summary>
public enum OperatorAction
{
    /// <summary>Anything else: shown in the status, acted on nowhere.</summary>
    Unknown,
    Approve,
    Promote,
    Rollback,
    Abort,
}

/// <summary>One operator command sent to a running lifecycle; the actor is the authenticated caller.</summary>
public sealed record OperatorCommand(OperatorAction Action, string Actor, string Reason = "")
{
    /// <summary>The reason given, or one that says who asked.</summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public string ReasonOrDefault => Reason.Length > 0 ? Reason : $"{Name(Action)} requested by {Actor}";

    /// <summary><c>approve</c>, <c>promote</c>, <c>rollback</c>, <c>abort</c>; anything else is <see cref="OperatorAction.Unknown"/>.</summary>
    public static OperatorAction ParseAction(string? text) => text switch
    {
        "approve" => OperatorAction.Approve,
        "promote" => OperatorAction.Promote,
        "rollback" => OperatorAction.Rollback,
        "abort" => OperatorAction.Abort,
        _ => OperatorAction.Unknown,
    };

    public static string Name(OperatorAction action) => action.ToString().ToLowerInvariant();
}

/// <summary>Where a running lifecycle is: the phase decides what an operator command does (<see cref="OperatorCommands"/>).</summary>
public enum LifecyclePhase
{
    Registering,
    Validating,
    Evaluating,

    /// <summary>A version without a shadow phase waits for its approval in <c>evaluating</c>, before it claims the rollout slot.</summary>
    AwaitingApproval,

    /// <summary>In <c>evaluating</c>, waiting for another version of the model to leave shadow or canary.</summary>
    WaitingForSlot,

    /// <summary>Named in the routes at 0 %, until every live replica reports it ready.</summary>
    WarmingUp,

    /// <summary>Mirrored production traffic, judged.</summary>
    Shadow,

    /// <summary>After shadow, waiting for an approval (a major version, or the policy asks for one).</summary>
    AwaitingShadowApproval,

    /// <summary>Routed traffic: canary steps, the blue-green window or the A/B split, judged.</summary>
    Canary,

    /// <summary>An A/B test or shadow-only run has finished: an operator promotes or rolls back.</summary>
    AwaitingDecision,

    /// <summary>Promoted; the previous production stays loaded so a rollback can reinstate it.</summary>
    Baking,

    Ended,
}

/// <summary>What an operator command does in a phase.</summary>
public enum CommandEffect
{
    /// <summary>Nothing: the run carries on as if the command had not come (the wait keeps its deadline).</summary>
    Ignore,

    /// <summary>The approval the run waits for.</summary>
    Proceed,

    /// <summary>Promote now, skipping what is left of the rollout.</summary>
    PromoteNow,

    /// <summary>
    /// Promote as soon as no other version of the model holds the rollout slot: promoting now
    /// would pull production out from under another version's running canary.
    /// </summary>
    PromoteWhenSlotFree,

    /// <summary>End <c>rejected</c>: the version never took traffic, so there is nothing to roll back.</summary>
    Reject,

    /// <summary>Take the candidate off traffic and end <c>rolled_back</c>.</summary>
    RollBack,

    /// <summary>Undo the promotion: the previous production version serves again, this one ends <c>rolled_back</c>.</summary>
    Reinstate,
}

/// <summary>
/// The operator command table: which command each phase accepts and what it does. One table, so
/// the behaviour is read in one place and tested phase by phase. A command sent while the run
/// validates, evaluates or moves traffic is buffered and read at the run's next wait, where that
/// phase's row applies. Notable rows: <c>promote</c> is accepted in every phase before traffic
/// (deferred while another version holds the slot); <c>approve</c> is acted on only where an
/// approval is awaited, so a duplicate one (e.g. during the bake) changes nothing.
/// </summary>
public static class OperatorCommands
{
    private static readonly (LifecyclePhase Phase, CommandEffect Approve, CommandEffect Promote, CommandEffect Rollback, CommandEffect Abort)[] Rows =
    [
        (LifecyclePhase.AwaitingApproval, CommandEffect.Proceed, CommandEffect.PromoteWhenSlotFree, CommandEffect.Reject, CommandEffect.Reject),
        (LifecyclePhase.WaitingForSlot, CommandEffect.Ignore, CommandEffect.PromoteWhenSlotFree, CommandEffect.Reject, CommandEffect.Reject),
        (LifecyclePhase.WarmingUp, CommandEffect.Ignore, CommandEffect.PromoteNow, CommandEffect.RollBack, CommandEffect.RollBack),
        (LifecyclePhase.Shadow, CommandEffect.Ignore, CommandEffect.PromoteNow, CommandEffect.RollBack, CommandEffect.RollBack),
        (LifecyclePhase.AwaitingShadowApproval, CommandEffect.Proceed, CommandEffect.PromoteNow, CommandEffect.RollBack, CommandEffect.RollBack),
        (LifecyclePhase.Canary, CommandEffect.Ignore, CommandEffect.PromoteNow, CommandEffect.RollBack, CommandEffect.RollBack),
        (LifecyclePhase.AwaitingDecision, CommandEffect.Ignore, CommandEffect.PromoteNow, CommandEffect.RollBack, CommandEffect.RollBack),
        (LifecyclePhase.Baking, CommandEffect.Ignore, CommandEffect.Ignore, CommandEffect.Reinstate, CommandEffect.Reinstate),
    ];

    private static readonly FrozenDictionary<(LifecyclePhase, OperatorAction), CommandEffect> Table = Rows
        .SelectMany(r => new[]
        {
            ((r.Phase, OperatorAction.Approve), r.Approve),
            ((r.Phase, OperatorAction.Promote), r.Promote),
            ((r.Phase, OperatorAction.Rollback), r.Rollback),
            ((r.Phase, OperatorAction.Abort), r.Abort),
        })
        .ToFrozenDictionary(p => p.Item1, p => p.Item2);

    /// <summary>The phases in which the run waits and so reads commands.</summary>
    public static IReadOnlyList<LifecyclePhase> WaitingPhases { get; } = Rows.Select(r => r.Phase).ToList();

    /// <summary>What <paramref name="action"/> does in <paramref name="phase"/>; <see cref="CommandEffect.Ignore"/> where the table has no entry.</summary>
    public static CommandEffect EffectOf(LifecyclePhase phase, OperatorAction action) =>
        Table.TryGetValue((phase, action), out var effect) ? effect : CommandEffect.Ignore;

    /// <summary>
    /// Whether <paramref name="action"/> decides the rollout's fate in <paramref name="phase"/>
    /// (promote, roll back, reject, reinstate): of two such commands racing in one stage only one
    /// is accepted (the control API claims it on the version row first). In a phase that does not
    /// wait (validating, evaluating, moving traffic) the command is read at the next wait, where
    /// promote, rollback and abort decide.
    /// </summary>
    public static bool Decides(LifecyclePhase phase, OperatorAction action)
    {
        if (!WaitingPhases.Contains(phase))
        {
            return action is OperatorAction.Promote or OperatorAction.Rollback or OperatorAction.Abort;
        }
        return EffectOf(phase, action) is not (CommandEffect.Ignore or CommandEffect.Proceed);
    }

    /// <summary>
    /// The table as Markdown, one row per waiting phase (the README shows exactly this; a test
    /// keeps the two the same).
    /// </summary>
    public static string Markdown()
    {
        static string Cell(CommandEffect effect) => effect switch
        {
            CommandEffect.Ignore => "ignored",
            CommandEffect.Proceed => "proceeds",
            CommandEffect.PromoteNow => "promotes now",
            CommandEffect.PromoteWhenSlotFree => "promotes once the slot is free",
            CommandEffect.Reject => "ends `rejected`",
            CommandEffect.RollBack => "ends `rolled_back` (candidate to 0 %)",
            CommandEffect.Reinstate => "reinstates the previous version; ends `rolled_back`",
            _ => effect.ToString(),
        };
        static string Phase(LifecyclePhase phase) => System.Text.Json.JsonNamingPolicy.SnakeCaseLower.ConvertName(phase.ToString());
        var text = new System.Text.StringBuilder("| phase | approve | promote | rollback | abort |\n|---|---|---|---|---|\n");
        foreach (var row in Rows)
        {
            text.Append(System.Globalization.CultureInfo.InvariantCulture, $"| `{Phase(row.Phase)}` | {Cell(row.Approve)} | {Cell(row.Promote)} | {Cell(row.Rollback)} | {Cell(row.Abort)} |\n");
        }
        return text.ToString();
    }

    /// <summary>Whether two decisive commands mean the same thing (a repeat is accepted once, not refused).</summary>
    public static bool SameDecision(OperatorAction a, OperatorAction b) =>
        a == b || (a is (OperatorAction.Rollback or OperatorAction.Abort) && b is (OperatorAction.Rollback or OperatorAction.Abort));

    /// <summary>The stage a decisive command leads to from <paramref name="stage"/>, for the answer a losing command gets.</summary>
    public static Stage Outcome(OperatorAction action, Stage stage) => action switch
    {
        OperatorAction.Promote => Stage.Production,
        _ when stage is Stage.Registered or Stage.Validating or Stage.Evaluating => Stage.Rejected,
        _ => Stage.RolledBack,
    };
}
