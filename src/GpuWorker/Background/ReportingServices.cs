using Lepton.GpuWorker.Configuration;
using Lepton.GpuWorker.DataPlane;
using Lepton.GpuWorker.Observability;
using Lepton.GpuWorker.Serving;
using Lepton.Shared;
using Lepton.Shared.Metrics;
using Lepton.Shared.Storage;
using Lepton.Shared.Workers;

namespace Lepton.GpuWorker.Background;

/// <summary>The ports the server actually bound (known once it has started; port 0 means "any free one").</summary>
public sealed class WorkerEndpoints
{
    private readonly TaskCompletionSource _bound = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Kestrel's listener of the HTTP routes (its endpoint holds the bound port once listening).</summary>
    public Microsoft.AspNetCore.Server.Kestrel.Core.ListenOptions? Http { get; set; }

    public Microsoft.AspNetCore.Server.Kestrel.Core.ListenOptions? Grpc { get; set; }

    public int HttpPort => Http?.IPEndPoint?.Port ?? 0;

    public int GrpcPort => Grpc?.IPEndPoint?.Port ?? 0;

    /// <summary>Completes when the server is listening.</summary>
    public Task Bound => _bound.Task;

    public void MarkBound() => _bound.TrySetResult();
}

/// <summary>
/// Publishes this replica's heartbeat (provider, loaded and ready versions, route generations,
/// draining) to the <c>workers</c> table every interval, from when the server listens. Each write
/// goes through the <see cref="StorageGuard"/>: while storage is away a beat fails fast or within
/// the deadline, and beats resume by themselves once it answers.
/// </summary>
public sealed class HeartbeatPublisher(
    WorkerDirectory directory,
    VersionPool pool,
    ReplicaState state,
    ProviderChoice provider,
    ServerOptions server,
    ReportingOptions options,
    WorkerEndpoints endpoints,
    StorageGuard guard,
    TimeProvider time,
    ILogger<HeartbeatPublisher> log) : BackgroundService
{
    public Heartbeat Current() => new()
    {
        Replica = server.Replica,
        Url = server.AdvertisedUrl(endpoints.HttpPort),
        GrpcUrl = endpoints.GrpcPort > 0 ? $"http://{server.AdvertisedHost}:{endpoints.GrpcPort}" : null,
        Provider = provider.Name,
        At = time.GetUtcNow(),
        Loaded = pool.Versions(),
        Ready = pool.Versions(SlotState.Ready),
        Draining = state.Draining,
        RouteGenerations = state.Tables.ToDictionary(t => t.Key, t => t.Value.Generation, StringComparer.Ordinal),
    };

    public async Task BeatAsync(CancellationToken cancellationToken = default)
    {
        var beat = Current();
        await guard.RunAsync(token => directory.BeatAsync(beat, token), cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        await endpoints.Bound.WaitAsync(stoppingToken);
        using var timer = new PeriodicTimer(options.Heartbeat, time);
        do
        {
            try
            {
                await BeatAsync(stoppingToken);
            }
            catch (StorageUnavailableException)
            {
                // The guard logs the outage once; the next tick tries again.
            }
            catch (Exception error) when (!stoppingToken.IsCancellationRequested)
            {
                log.LogWarning("heartbeat failed: {Error}", error.Message);
            }
        }
        while (await timer.WaitForNextTickAsync(stoppingToken));
    }
}

/// <summary>
/// Writes the rollups of windows that changed to the <c>metrics</c> table every interval, one
/// transaction per model and up to 100 windows. Unwritten windows stay in memory and are retried
/// (at most <see cref="ReportingOptions.RollupBuffer"/> of them: beyond that the oldest are dropped,
/// counted in <c>lepton_worker_rollup_windows_dropped_total</c> and logged), so the rows written
/// after a storage outage hold the outage's traffic. The first flush that succeeds after a failed
/// one is written again on the next tick: a write the outage left queued inside storage (sent before
/// the deadline gave up on it) may land late, and must not have the last word on a window's total.
/// </summary>
public sealed class RollupFlusher(
    RollupRecorder recorder,
    MetricsStore store,
    ReportingOptions options,
    StorageGuard guard,
    WorkerMetrics metrics,
    TimeProvider time,
    ILogger<RollupFlusher> log) : BackgroundService
{
    private bool _failedBefore;

    /// <summary>Drops what the buffer cannot hold, then writes every changed window; throws when some could not be written (they are kept).</summary>
    public async Task FlushAsync(CancellationToken cancellationToken = default)
    {
        var dropped = recorder.DropOldest(options.RollupBuffer);
        if (dropped.Count > 0)
        {
            log.LogWarning(
                "rollup buffer full ({Bound} windows): dropped {Count} unwritten windows, the oldest (window starts {First}..{Last}), while storage is away",
                options.RollupBuffer, dropped.Count, dropped[0], dropped[^1]);
        }
        metrics.Reporting(guard.Available, recorder.Buffered, dropped.Count);
        var pending = recorder.TakeDirty();
        var batches = pending.GroupBy(r => r.Model, StringComparer.Ordinal).SelectMany(g => g.Chunk(MetricsStore.BatchLimit)).ToList();
        for (var i = 0; i < batches.Count; i++)
        {
            try
            {
                await guard.RunAsync(token => store.WriteBatchAsync(batches[i], token), cancellationToken);
            }
            catch
            {
                recorder.Restore(batches.Skip(i).SelectMany(b => b));
                _failedBefore = true;
                metrics.Reporting(guard.Available, recorder.Buffered, 0);
                throw;
            }
        }
        if (_failedBefore && pending.Count > 0)
        {
            recorder.Restore(pending);
            _failedBefore = false;
        }
        metrics.Reporting(guard.Available, recorder.Buffered, 0);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(options.Flush, time);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                await FlushAsync(stoppingToken);
            }
            catch (StorageUnavailableException)
            {
                // Kept for the next flush; the guard logs the outage once.
            }
            catch (Exception error) when (!stoppingToken.IsCancellationRequested)
            {
                log.LogWarning("writing rollups failed (kept for the next flush): {Error}", error.Message);
            }
        }
    }
}

/// <summary>Unloads versions that carry no traffic and were not used for the grace period.</summary>
public sealed class IdleUnloader(VersionPool pool, LoaderOptions options, TimeProvider time, ILogger<IdleUnloader> log) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var period = TimeSpan.FromTicks(Math.Max(TimeSpan.FromMilliseconds(50).Ticks, Math.Min(options.PollInterval.Ticks, options.UnloadGrace.Ticks / 2)));
        using var timer = new PeriodicTimer(period, time);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            foreach (var (model, version) in await pool.UnloadIdleAsync(options.UnloadGrace))
            {
                if (log.IsEnabled(LogLevel.Information))
                {
                    log.LogInformation("{Model} {Version} unloaded after {Grace} idle", model, version, options.UnloadGrace);
                }
            }
        }
    }
}

/// <summary>
/// Drains on SIGTERM: readiness goes off and a draining heartbeat goes out before the server stops
/// accepting (load balancers and the lifecycle notice), the server then finishes in-flight
/// requests, and only after it has stopped are the last rollups and heartbeat written.
/// </summary>
public sealed class DrainCoordinator(
    ReplicaState state,
    InferenceDataPlane dataPlane,
    HeartbeatPublisher heartbeats,
    RollupFlusher flusher,
    ServerOptions server,
    TimeProvider time,
    ILogger<DrainCoordinator> log) : IHostedLifecycleService
{
    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        state.StartDraining();
        if (log.IsEnabled(LogLevel.Information))
        {
            log.LogInformation("draining: readiness off for {Drain} before the server stops accepting", server.Drain);
        }
        await Safely("draining heartbeat", () => heartbeats.BeatAsync(cancellationToken));
        try
        {
            await Task.Delay(server.Drain, time, cancellationToken);
        }
        catch (OperationCanceledException)
        {
            // The host's shutdown timeout ran out: stop now.
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StoppedAsync(CancellationToken cancellationToken)
    {
        var deadline = time.GetTimestamp();
        while (dataPlane.ShadowsInFlight > 0 && time.GetElapsedTime(deadline) < TimeSpan.FromSeconds(10))
        {
            await Task.Delay(TimeSpan.FromMilliseconds(10), time, CancellationToken.None);
        }
        await Safely("final rollups", () => flusher.FlushAsync(CancellationToken.None));
        await Safely("final heartbeat", () => heartbeats.BeatAsync(CancellationToken.None));
    }

    private async Task Safely(string what, Func<Task> step)
    {
        try
        {
            await step();
        }
        catch (Exception error)
        {
            log.LogWarning("{What} failed: {Error}", what, error.Message);
        }
    }
}
