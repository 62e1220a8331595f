namespace Lepton.Functions.Lifecycle;

/// <summary>
/// Every orchestration, activity and external-event name of the lifecycle, in one place: the
/// Functions app's <c>[Function]</c> methods, the standalone worker's registry and the
/// orchestrator's calls all use these constants, so a rename happens here only.
/// </summary>
public static class LifecycleNames
{
    public const string Orchestrator = "lepton_lifecycle";

    public const string Register = "lepton_register";
    public const string Validate = "lepton_validate";
    public const string Transition = "lepton_transition";
    public const string EvaluateShard = "lepton_evaluate_shard";
    public const string Compare = "lepton_compare";
    public const string CheckSlot = "lepton_check_slot";
    public const string WarmStatus = "lepton_warm_status";
    public const string SetTraffic = "lepton_set_routes";
    public const string RoutesApplied = "lepton_routes_applied";
    public const string DecideWindow = "lepton_decide_window";
    public const string Promote = "lepton_promote";
    public const string Rollback = "lepton_rollback";
    public const string Reinstate = "lepton_reinstate";
    public const string Report = "lepton_report";
    public const string Retire = "lepton_retire";

    public static readonly IReadOnlyList<string> Activities =
    [
        Register, Validate, Transition, EvaluateShard, Compare, CheckSlot, WarmStatus, SetTraffic, RoutesApplied,
        DecideWindow, Promote, Rollback, Reinstate, Report, Retire,
    ];

    /// <summary>
    /// One external event carries every operator command (<see cref="Shared.Lifecycle.OperatorCommand"/>): a
    /// single waiter per orchestration means a command can never land on a stale waiter.
    /// </summary>
    public const string OperatorEvent = "operator";

    /// <summary>The timer function that deletes old metric rollups.</summary>
    public const string MetricsRetentionTimer = "expire_metric_rollups";

    /// <summary>The blob trigger on new model uploads.</summary>
    public const string ModelBlobTrigger = "model_blob";
}
