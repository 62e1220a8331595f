using Lepton.Shared;
using Lepton.Shared.Storage;
using Microsoft.DurableTask;

namespace Lepton.Functions.Lifecycle.Activities;

/// <summary>
/// A lifecycle activity: decode the input record, call one operation of <c>Lepton.Shared</c>,
/// return the result record. The standalone DurableTask worker runs it through
/// <see cref="RunAsync"/>; the Functions app's <c>[ActivityTrigger]</c> methods call
/// <see cref="GuardedAsync"/>. It throws only for faults (storage unreachable, a lost ETag race),
/// which the orchestrator's retry policy exists for; refusals are results.
/// </summary>
public abstract class LeptonActivity<TInput, TOutput> : TaskActivity<TInput, TOutput>
{
    public sealed override Task<TOutput> RunAsync(TaskActivityContext context, TInput input) =>
        GuardedAsync(input ?? throw new ArgumentNullException(nameof(input)), CancellationToken.None);

    public abstract Task<TOutput> ExecuteAsync(TInput input, CancellationToken cancellationToken);

    /// <summary><see cref="ExecuteAsync"/>, with storage that cannot be reached reported as <see cref="StorageUnavailableException"/>.</summary>
    public Task<TOutput> GuardedAsync(TInput input, CancellationToken cancellationToken) =>
        ActivityFaults.GuardAsync(() => ExecuteAsync(input, cancellationToken));

    /// <summary>
    /// Whether <paramref name="error"/> is a domain refusal (bad input, something missing, a
    /// conflicting registration) rather than a fault: retrying it would only give the same answer.
    /// A lost ETag race is a fault: the retry reads the new state.
    /// </summary>
    protected static bool IsRefusal(LeptonException error) =>
        error.Kind is ErrorKind.InvalidInput or ErrorKind.NotFound or ErrorKind.TooLarge
        || (error.Kind == ErrorKind.Conflict && error is not ConcurrencyConflictException);
}

/// <summary>
/// How a storage outage looks to the lifecycle: an activity that could not reach storage fails
/// with <see cref="StorageUnavailableException"/> (one type, one message shape), so the
/// orchestrator can tell an outage from any other fault in the failure it is handed.
/// </summary>
public static class ActivityFaults
{
    private static readonly string StorageFaultType = typeof(StorageUnavailableException).FullName!;

    public static async Task<T> GuardAsync<T>(Func<Task<T>> run)
    {
        try
        {
            return await run();
        }
        catch (Exception error) when (error is not LeptonException && StorageClients.IsUnavailable(error))
        {
            throw new StorageUnavailableException(FirstLine(error.Message), error);
        }
    }

    /// <summary>Whether an activity failed because storage could not be reached.</summary>
    public static bool IsStorageFault(TaskFailureDetails? failure) =>
        failure is not null && (failure.ErrorType == StorageFaultType || IsStorageFault(failure.InnerFailure));

    // The SDK's messages carry a status block and headers on further lines; the first says what happened.
    private static string FirstLine(string message)
    {
        var line = message.Split('\n', 2)[0].Trim();
        return line.Length > 200 ? line[..200] + "…" : line;
    }
}
