using Microsoft.DurableTask;

namespace Lepton.Functions.Lifecycle;

/// <summary>
/// The version lifecycle, written once against <see cref="TaskOrchestrationContext"/>: the
/// Functions app runs it through its <c>[OrchestrationTrigger]</c> method, the standalone
/// DurableTask worker (local stack, tests) registers this class directly. The phases are in
/// <see cref="LifecycleRun"/>.
/// </summary>
public sealed class LifecycleOrchestrator : TaskOrchestrator<LifecycleInput, LifecycleOutcome>
{
    public override Task<LifecycleOutcome> RunAsync(TaskOrchestrationContext context, LifecycleInput input) =>
        new LifecycleRun(context, input ?? throw new ArgumentNullException(nameof(input))).RunAsync();
}
