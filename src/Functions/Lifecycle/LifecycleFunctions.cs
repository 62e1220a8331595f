using Lepton.Functions.Lifecycle.Activities;
using Lepton.Shared.Lifecycle;
using Microsoft.Azure.Functions.Worker;
using Microsoft.DurableTask;

namespace Lepton.Functions.Lifecycle;

/// <summary>
/// The lifecycle's orchestrator and activities as Functions: each method is a binding that calls
/// the same class the standalone worker registers (<see cref="LifecycleRegistry"/>). No source
/// generator is involved, so the names are the constants of <see cref="LifecycleNames"/>.
/// </summary>
public sealed class LifecycleFunctions(IServiceProvider services)
{
    [Function(LifecycleNames.Orchestrator)]
    public static Task<LifecycleOutcome> Lifecycle([OrchestrationTrigger] TaskOrchestrationContext context) =>
        new LifecycleOrchestrator().RunAsync(context, context.GetInput<LifecycleInput>()!);

    [Function(LifecycleNames.Register)]
    public Task<RegisterResult> Register([ActivityTrigger] RegisterInput input, FunctionContext context) => Run<RegisterActivity, RegisterInput, RegisterResult>(input, context);

    [Function(LifecycleNames.Validate)]
    public Task<ValidateResult> Validate([ActivityTrigger] ValidateInput input, FunctionContext context) => Run<ValidateActivity, ValidateInput, ValidateResult>(input, context);

    [Function(LifecycleNames.Transition)]
    public Task<TransitionResult> Transition([ActivityTrigger] TransitionInput input, FunctionContext context) => Run<TransitionActivity, TransitionInput, TransitionResult>(input, context);

    [Function(LifecycleNames.EvaluateShard)]
    public Task<EvaluateShardResult> EvaluateShard([ActivityTrigger] EvaluateShardInput input, FunctionContext context) =>
        Run<EvaluateShardActivity, EvaluateShardInput, EvaluateShardResult>(input, context);

    [Function(LifecycleNames.Compare)]
    public Task<CompareResult> Compare([ActivityTrigger] CompareInput input, FunctionContext context) => Run<CompareActivity, CompareInput, CompareResult>(input, context);

    [Function(LifecycleNames.CheckSlot)]
    public Task<SlotResult> CheckSlot([ActivityTrigger] SlotInput input, FunctionContext context) => Run<CheckSlotActivity, SlotInput, SlotResult>(input, context);

    [Function(LifecycleNames.WarmStatus)]
    public Task<WarmStatusResult> WarmStatus([ActivityTrigger] WarmStatusInput input, FunctionContext context) =>
        Run<WarmStatusActivity, WarmStatusInput, WarmStatusResult>(input, context);

    [Function(LifecycleNames.SetTraffic)]
    public Task<SetTrafficResult> SetTraffic([ActivityTrigger] SetTrafficInput input, FunctionContext context) =>
        Run<SetTrafficActivity, SetTrafficInput, SetTrafficResult>(input, context);

    [Function(LifecycleNames.RoutesApplied)]
    public Task<RoutesAppliedResult> RoutesApplied([ActivityTrigger] RoutesAppliedInput input, FunctionContext context) =>
        Run<RoutesAppliedActivity, RoutesAppliedInput, RoutesAppliedResult>(input, context);

    [Function(LifecycleNames.DecideWindow)]
    public Task<WindowJudgement> DecideWindow([ActivityTrigger] WindowRequest input, FunctionContext context) =>
        Run<DecideWindowActivity, WindowRequest, WindowJudgement>(input, context);

    [Function(LifecycleNames.Promote)]
    public Task<PromoteResult> Promote([ActivityTrigger] PromoteInput input, FunctionContext context) => Run<PromoteActivity, PromoteInput, PromoteResult>(input, context);

    [Function(LifecycleNames.Rollback)]
    public Task<RollbackResult> Rollback([ActivityTrigger] RollbackInput input, FunctionContext context) => Run<RollbackActivity, RollbackInput, RollbackResult>(input, context);

    [Function(LifecycleNames.Reinstate)]
    public Task<ReinstateResult> Reinstate([ActivityTrigger] ReinstateInput input, FunctionContext context) =>
        Run<ReinstateActivity, ReinstateInput, ReinstateResult>(input, context);

    [Function(LifecycleNames.Report)]
    public Task<ReportResult> Report([ActivityTrigger] ReportInput input, FunctionContext context) => Run<ReportActivity, ReportInput, ReportResult>(input, context);

    [Function(LifecycleNames.Retire)]
    public Task<RetireResult> Retire([ActivityTrigger] RetireInput input, FunctionContext context) => Run<RetireActivity, RetireInput, RetireResult>(input, context);

    private Task<TOut> Run<TActivity, TIn, TOut>(TIn input, FunctionContext context)
        where TActivity : LeptonActivity<TIn, TOut> =>
        Microsoft.Extensions.DependencyInjection.ActivatorUtilities.GetServiceOrCreateInstance<TActivity>(services).GuardedAsync(input, context.CancellationToken);
}

/// <summary>The standalone DurableTask worker's registration: the same orchestrator and activity classes, under the same names.</summary>
public static class LifecycleRegistry
{
    public static DurableTaskRegistry AddLeptonLifecycle(this DurableTaskRegistry registry) => registry
        .AddOrchestrator<LifecycleOrchestrator>(LifecycleNames.Orchestrator)
        .AddActivity<RegisterActivity>(LifecycleNames.Register)
        .AddActivity<ValidateActivity>(LifecycleNames.Validate)
        .AddActivity<TransitionActivity>(LifecycleNames.Transition)
        .AddActivity<EvaluateShardActivity>(LifecycleNames.EvaluateShard)
        .AddActivity<CompareActivity>(LifecycleNames.Compare)
        .AddActivity<CheckSlotActivity>(LifecycleNames.CheckSlot)
        .AddActivity<WarmStatusActivity>(LifecycleNames.WarmStatus)
        .AddActivity<SetTrafficActivity>(LifecycleNames.SetTraffic)
        .AddActivity<RoutesAppliedActivity>(LifecycleNames.RoutesApplied)
        .AddActivity<DecideWindowActivity>(LifecycleNames.DecideWindow)
        .AddActivity<PromoteActivity>(LifecycleNames.Promote)
        .AddActivity<RollbackActivity>(LifecycleNames.Rollback)
        .AddActivity<ReinstateActivity>(LifecycleNames.Reinstate)
        .AddActivity<ReportActivity>(LifecycleNames.Report)
        .AddActivity<RetireActivity>(LifecycleNames.Retire);
}
