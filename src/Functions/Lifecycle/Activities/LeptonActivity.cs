using Lepton.Shared;
using Microsoft.DurableTask;

namespace Lepton.Functions.Lifecycle.Activities;

/// <summary>
/// A lifecycle activity: decode the input record, call one operation of <c>Lepton.Shared</c>,
/// return the result record. The standalone DurableTask worker runs it through
/// <see cref="RunAsync"/>; the Functions app's <c>[ActivityTrigger]</c> methods call
/// <see cref="ExecuteAsync"/>. It throws only for faults (storage unreachable, a lost ETag race),
/// which the orchestrator's retry policy exists for; refusals are results.
/// </summary>
public abstract class LeptonActivity<TInput, TOutput> : TaskActivity<TInput, TOutput>
{
    public sealed override Task<TOutput> RunAsync(TaskActivityContext context, TInput input) =>
        ExecuteAsync(input ?? throw new ArgumentNullException(nameof(input)), CancellationToken.None);

    public abstract Task<TOutput> ExecuteAsync(TInput input, CancellationToken cancellationToken);

    /// <summary>
    /// Whether <paramref name="error"/> is a domain refusal (bad input, something missing, a
    /// conflicting registration) rather than a fault: retrying it would only give the same answer.
    /// A lost ETag race is a fault: the retry reads the new state.
    /// </summary>
    protected static bool IsRefusal(LeptonException error) =>
        error.Kind is ErrorKind.InvalidInput or ErrorKind.NotFound or ErrorKind.TooLarge
        || (error.Kind == ErrorKind.Conflict && error is not ConcurrencyConflictException);
}
