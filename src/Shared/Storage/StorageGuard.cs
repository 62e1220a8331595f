using Microsoft.Extensions.Logging;
using Polly;
using Polly.CircuitBreaker;
using Polly.Timeout;

namespace Lepton.Shared.Storage;

/// <summary>How a <see cref="StorageGuard"/> bounds and paces the storage calls of background loops.</summary>
public sealed record StorageGuardOptions
{
    /// <summary>
    /// The longest one guarded call may take, the SDK's own retries included. A hung storage (it
    /// accepts connections but never answers) costs a loop at most this per call, never its life.
    /// </summary>
    public TimeSpan Deadline { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>How long the circuit stays open the first time; it doubles each time a probe fails.</summary>
    public TimeSpan FirstBreak { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>The longest the circuit stays open before the next probe (so also how late, at worst, a return of storage is noticed).</summary>
    public TimeSpan LongestBreak { get; init; } = TimeSpan.FromSeconds(8);
}

/// <summary>
/// The storage calls of background loops (registry polls, heartbeats, rollup writes, the local
/// watcher) go through here, on top of the SDK's own retry (<see cref="StorageClients"/>): each call
/// is bounded by <see cref="StorageGuardOptions.Deadline"/> (Polly's timeout), and once calls fail
/// with storage unreachable the circuit opens (Polly's circuit breaker), so the loops stop calling a
/// dead endpoint for a break that doubles, with jitter, up to <see cref="StorageGuardOptions.LongestBreak"/>,
/// then send one probe. Whatever the cause, an outage reaches the caller as
/// <see cref="StorageUnavailableException"/>; other failures (a 404, a conflict) pass through
/// untouched and count as storage answering. One guard per process and storage account.
/// </summary>
public sealed class StorageGuard
{
    private readonly ResiliencePipeline _pipeline;
    private readonly CircuitBreakerStateProvider _circuit = new();
    private readonly StorageGuardOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger _log;
    private readonly string _who;
    private readonly Lock _lock = new();
    private DateTimeOffset? _unavailableSince;
    private long _outages;

    public StorageGuard(string who, StorageGuardOptions options, TimeProvider time, ILogger log)
    {
        _who = who;
        _options = options;
        _time = time;
        _log = log;
        _pipeline = new ResiliencePipelineBuilder { TimeProvider = time }
            .AddCircuitBreaker(new CircuitBreakerStrategyOptions
            {
                // Two calls in a row failing for want of storage is an outage, not a blip: the SDK
                // has already retried each of them with backoff.
                FailureRatio = 0.5,
                MinimumThroughput = 2,
                SamplingDuration = TimeSpan.FromSeconds(Math.Max(2, options.Deadline.TotalSeconds * 2)),
                BreakDurationGenerator = args => ValueTask.FromResult(BreakAfter(args.HalfOpenAttempts)),
                ShouldHandle = args => ValueTask.FromResult(
                    args.Outcome.Exception is { } error && !args.Context.CancellationToken.IsCancellationRequested && IsOutage(error)),
                StateProvider = _circuit,
                OnOpened = args =>
                {
                    if (_log.IsEnabled(LogLevel.Warning))
                    {
                        _log.LogWarning("{Who}: storage unreachable; pausing storage calls for {Break:F1} s", _who, args.BreakDuration.TotalSeconds);
                    }
                    return default;
                },
            })
            .AddTimeout(new TimeoutStrategyOptions { Timeout = options.Deadline })
            .Build();
    }

    /// <summary>Whether storage answered the last guarded call (true until a call finds it unreachable).</summary>
    public bool Available
    {
        get
        {
            lock (_lock)
            {
                return _unavailableSince is null;
            }
        }
    }

    /// <summary>When the current outage was first seen; <c>null</c> while storage answers.</summary>
    public DateTimeOffset? UnavailableSince
    {
        get
        {
            lock (_lock)
            {
                return _unavailableSince;
            }
        }
    }

    /// <summary>Outages seen since start (each ends with a call that storage answered).</summary>
    public long Outages => Interlocked.Read(ref _outages);

    /// <summary>The circuit's state: <c>Open</c> while calls are refused without trying.</summary>
    public CircuitState Circuit => _circuit.CircuitState;

    public TimeSpan Deadline => _options.Deadline;

    /// <summary>Runs one storage call within the deadline; an outage (or an open circuit) throws <see cref="StorageUnavailableException"/>.</summary>
    public async Task<T> RunAsync<T>(Func<CancellationToken, Task<T>> call, CancellationToken cancellationToken = default)
    {
        try
        {
            var result = await _pipeline.ExecuteAsync(static async (call, token) => await call(token), call, cancellationToken);
            Answered();
            return result;
        }
        catch (Exception error) when (!cancellationToken.IsCancellationRequested && (error is BrokenCircuitException || IsOutage(error)))
        {
            Unreachable();
            throw new StorageUnavailableException(Describe(error), error);
        }
        catch (Exception) when (!cancellationToken.IsCancellationRequested)
        {
            // Storage answered, if only to refuse: it is reachable.
            Answered();
            throw;
        }
    }

    /// <inheritdoc cref="RunAsync{T}(Func{CancellationToken, Task{T}}, CancellationToken)"/>
    public Task RunAsync(Func<CancellationToken, Task> call, CancellationToken cancellationToken = default) =>
        RunAsync(
            async token =>
            {
                await call(token);
                return true;
            },
            cancellationToken);

    /// <summary>Whether <paramref name="error"/> means storage could not be reached in time.</summary>
    public static bool IsOutage(Exception error) =>
        error is TimeoutRejectedException or StorageUnavailableException || StorageClients.IsUnavailable(error);

    private TimeSpan BreakAfter(int failedProbes)
    {
        var doubled = _options.FirstBreak.TotalSeconds * Math.Pow(2, Math.Min(failedProbes, 16));
        var capped = Math.Min(doubled, _options.LongestBreak.TotalSeconds);
        // ±20 % jitter, so replicas that lost storage together do not probe it together.
        return TimeSpan.FromSeconds(Math.Max(0.5, capped * (0.8 + (0.4 * Random.Shared.NextDouble()))));
    }

    private void Unreachable()
    {
        lock (_lock)
        {
            if (_unavailableSince is not null)
            {
                return;
            }
            _unavailableSince = _time.GetUtcNow();
            _outages++;
        }
        if (_log.IsEnabled(LogLevel.Warning))
        {
            _log.LogWarning("{Who}: storage unreachable; serving from the last known state and keeping unwritten data until it answers", _who);
        }
    }

    private void Answered()
    {
        DateTimeOffset since;
        lock (_lock)
        {
            if (_unavailableSince is not { } start)
            {
                return;
            }
            since = start;
            _unavailableSince = null;
        }
        if (_log.IsEnabled(LogLevel.Information))
        {
            _log.LogInformation("{Who}: storage answers again after {Seconds:F1} s", _who, (_time.GetUtcNow() - since).TotalSeconds);
        }
    }

    private string Describe(Exception error) => error switch
    {
        BrokenCircuitException broken => $"storage was unreachable on recent calls; the next try is in {(broken.RetryAfter ?? _options.FirstBreak).TotalSeconds:F1} s",
        TimeoutRejectedException => $"storage did not answer within {_options.Deadline.TotalSeconds:F1} s",
        _ => $"storage is unreachable ({FirstLine(Innermost(error).Message)})",
    };

    private static Exception Innermost(Exception error) => error switch
    {
        AggregateException { InnerExceptions.Count: > 0 } aggregate => Innermost(aggregate.InnerExceptions[^1]),
        { InnerException: { } inner } => Innermost(inner),
        _ => error,
    };

    private static string FirstLine(string text)
    {
        var line = text.Split('\n', 2)[0].Trim();
        return line.Length > 200 ? line[..200] : line;
    }
}
