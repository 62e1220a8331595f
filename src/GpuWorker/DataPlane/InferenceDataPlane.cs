using System.Collections.Concurrent;
using Lepton.GpuWorker.Configuration;
using Lepton.GpuWorker.Observability;
using Lepton.GpuWorker.Protocol;
using Lepton.GpuWorker.Routing;
using Lepton.GpuWorker.Serving;
using Lepton.Shared;
using Lepton.Shared.Lifecycle;
using Lepton.Shared.Registry;
using Lepton.Shared.Storage;

namespace Lepton.GpuWorker.DataPlane;

/// <summary>
/// The serving core between the protocol bindings (HTTP, gRPC) and the models (KServe's
/// <c>dataplane.py</c> shape): resolve a version (routed or pinned), check the request against its
/// signature, run it through the version's batcher, count the outcome against the version that
/// handled it, and mirror it to the shadow after the caller's answer is out. Bindings decode,
/// call one method here and encode; nothing here knows HTTP or gRPC.
/// </summary>
public sealed partial class InferenceDataPlane(
    VersionPool pool,
    ReplicaState state,
    ModelRegistry registry,
    RollupRecorder rollups,
    WorkerMetrics metrics,
    InferenceOptions options,
    LoaderOptions loader,
    ProviderChoice provider,
    ServerOptions server,
    StorageGuard guard,
    TimeProvider time,
    ILogger<InferenceDataPlane> log)
{
    /// <summary>The key under <see cref="Exception.Data"/> naming the version an error came from (for <c>x-lepton-version</c>).</summary>
    public const string VersionKey = "x-lepton-version";

    // Registry answers for pinned versions that cannot be served, remembered briefly so a caller
    // hammering a rejected or unknown version costs one registry read per second, not one per request.
    private static readonly TimeSpan RefusalMemory = TimeSpan.FromSeconds(1);
    private const int MaxRememberedRefusals = 1024;

    private readonly ConcurrentDictionary<(string, string), (long At, LeptonException Error)> _refusals = new();
    private int _shadowsInFlight;

    public ReplicaState State => state;

    public VersionPool Pool => pool;

    /// <summary>How the background loops find storage (readiness reports it; serving never waits on it).</summary>
    public StorageGuard Storage => guard;

    /// <summary>Shadow copies running now.</summary>
    public int ShadowsInFlight => Volatile.Read(ref _shadowsInFlight);

    /// <summary>The request header that carries the sticky key of <paramref name="model"/>, if its routes name one.</summary>
    public string? StickyHeader(string model) => state.Table(model)?.StickyHeader;

    /// <summary>Serves one request; the outcome owns the request from here on (dispose it after encoding).</summary>
    public async ValueTask<InferOutcome> InferAsync(string model, string? version, InferRequest request, string? stickyKey)
    {
        var started = time.GetTimestamp();
        // The generation of the routes this request is counted under: the table that routed it, or
        // (pinned) the table in force, so the lifecycle can tell traffic of one step from the next.
        var (served, generation) = await ResolveAsync(model, version, stickyKey);
        var routed = version is null;
        BatchItem item;
        try
        {
            item = served.Onnx.Prepare(request, options.RejectNonfiniteInputs);
        }
        catch (LeptonException error)
        {
            // The caller's mistake, not the version's: counted as invalid, never as an error.
            served.Metrics.Request(Outcome.Invalid, time.GetElapsedTime(started).TotalSeconds);
            served.Return();
            throw Tag(error, served.Version);
        }
        ItemResult result;
        try
        {
            result = await served.InferAsync(item);
        }
        catch (Exception error)
        {
            CountFailure(served, generation, routed, started);
            served.Return();
            throw Tag(error as LeptonException ?? new InferenceFailedException($"{model} {served.Version}: inference failed: {error.Message}"), served.Version);
        }
        var latency = time.GetElapsedTime(started);
        var bad = result.Nonfinite && options.NonfiniteIsError;
        rollups.Record(model, served.Version, generation, routed, bad, result.Nonfinite, item.Rows, latency.TotalMilliseconds, result.ComputeMs, result.Outputs[served.Onnx.ScoreOutput]);
        served.Metrics.Request(result.Nonfinite ? Outcome.Nonfinite : Outcome.Ok, latency.TotalSeconds);
        if (bad)
        {
            served.Statistics.Failed(latency);
            result.Dispose();
            served.Return();
            throw Tag(new NonFiniteOutputException(
                $"{model} {served.Version} produced non-finite output (NaN or infinity); the result was withheld and counted "
                + "as an error for this version"), served.Version);
        }
        served.Statistics.Succeeded(latency, item.Rows, time.GetUtcNow().ToUnixTimeMilliseconds());
        string? shadow = null;
        var shadowGeneration = generation;
        if (routed && state.Table(model) is { Shadow: not null } table)
        {
            shadow = table.Mirrors(Random.Shared.Next(StickyBucket.Buckets), served.Version);
            shadowGeneration = table.Generation;
        }
        return new InferOutcome(this, served, result, request, shadow, shadowGeneration, latency.TotalMilliseconds);
    }

    private static Exception Tag(Exception error, string version)
    {
        error.Data[VersionKey] = version;
        return error;
    }

    private void CountFailure(ServedVersion served, long generation, bool routed, long started)
    {
        var latency = time.GetElapsedTime(started);
        rollups.Record(served.Model, served.Version, generation, routed, error: true, nonfinite: false, rows: 0, latency.TotalMilliseconds, 0, null);
        served.Metrics.Request(Outcome.Error, latency.TotalSeconds);
        served.Statistics.Failed(latency);
    }

    /// <summary>The ready version that serves this request, leased, and the route generation it counts under; 404/409/503 saying why not.</summary>
    private async ValueTask<(ServedVersion Served, long Generation)> ResolveAsync(string model, string? version, string? stickyKey)
    {
        if (!state.Synced)
        {
            // It does not know yet what it serves: a 404 would tell the caller something false and final.
            throw new NotReadyException("this replica is starting: its first sync with the registry is pending; retry shortly", TimeSpan.FromSeconds(1));
        }
        if (version is null)
        {
            var bucket = stickyKey is null ? Random.Shared.Next(StickyBucket.Buckets) : StickyBucket.Of(model, stickyKey);
            // Twice at most: a version swapped out between reading the table and taking the lease
            // is no longer in the table read again. A routed request never starts a load.
            for (var attempt = 0; attempt < 2; attempt++)
            {
                var table = state.Table(model) ?? throw NotServed(model);
                var chosen = table.Pick(bucket) ?? throw new NotReadyException($"model '{model}' has no ready version yet; retry shortly", TimeSpan.FromSeconds(1));
                if (pool.GetReady(model, chosen) is { } routed && routed.TryLease())
                {
                    return (routed, table.Generation);
                }
            }
            throw new NotReadyException($"model '{model}' is switching versions; retry shortly", TimeSpan.FromSeconds(1));
        }
        if (!SemVer.TryParse(version, out _))
        {
            throw new InvalidVersionException($"'{OipJsonDecoder.Clip(version)}' is not a SemVer version (e.g. 1.2.0)");
        }
        if (state.Versions.TryGetValue((model, version), out var known) && !StageMachine.ServableStages.Contains(known.Stage))
        {
            throw NotServable(model, version, known.Stage, known.Reason);
        }
        if (pool.GetReady(model, version) is { } pinned && pinned.TryLease())
        {
            return (pinned, state.Table(model)?.Generation ?? 0);
        }
        throw await NotReadyErrorAsync(model, version);
    }

    /// <summary>Why a known model's version cannot serve now, starting its load when it may.</summary>
    public async ValueTask<LeptonException> NotReadyErrorAsync(string model, string version)
    {
        if (loader.Models.Count > 0 && !loader.Models.Contains(model, StringComparer.Ordinal))
        {
            return NotServed(model);
        }
        var slot = pool.Find(model, version);
        if (slot is null && state.Versions.TryGetValue((model, version), out var known) && StageMachine.ServableStages.Contains(known.Stage))
        {
            // The last poll vouches for it: load it on demand without asking storage on the request path.
            slot = pool.RequestLoad(model, version);
        }
        if (slot is null)
        {
            var key = (model, version);
            if (_refusals.TryGetValue(key, out var memo) && time.GetElapsedTime(memo.At) < RefusalMemory)
            {
                return memo.Error;
            }
            if (!guard.Available)
            {
                // Fail fast rather than make the caller wait on a storage the loops found away.
                return new StorageUnavailableException(
                    $"storage is unreachable, so {model} {version} cannot be looked up; the versions this replica already serves keep answering; retry shortly");
            }
            ModelVersion? record;
            try
            {
                record = await guard.RunAsync(token => registry.FindVersionAsync(model, version, token));
            }
            catch (LeptonException error)
            {
                return error;
            }
            if (record is null || !StageMachine.ServableStages.Contains(record.Stage))
            {
                LeptonException refusal = record is null
                    ? new VersionNotFoundException($"model '{model}' has no version {version}")
                    : NotServable(model, version, record.Stage, record.Reason);
                if (_refusals.Count >= MaxRememberedRefusals)
                {
                    // Bounded: a caller cycling through made-up versions cannot grow this without end.
                    _refusals.Clear();
                }
                _refusals[key] = (time.GetTimestamp(), refusal);
                return refusal;
            }
            // Pinned requests may reach any servable version: load it on demand.
            slot = pool.RequestLoad(model, version);
        }
        if (slot.State == SlotState.Failed)
        {
            return new NotReadyException($"{model} {version} could not be loaded: {slot.Error}", VersionPool.RetryFailedAfter);
        }
        if (slot.State == SlotState.Ready)
        {
            return new NotReadyException($"{model} {version} is being unloaded; retry shortly", TimeSpan.FromSeconds(1));
        }
        return new NotReadyException($"{model} {version} is loading; retry shortly", TimeSpan.FromSeconds(1));
    }

    private ModelNotFoundException NotServed(string model)
    {
        var served = string.Join(", ", state.Tables.Keys.Order(StringComparer.Ordinal));
        return new ModelNotFoundException($"model '{OipJsonDecoder.Clip(model)}' is not served by this worker; served: {(served.Length > 0 ? served : "none yet")}");
    }

    private static VersionNotServableException NotServable(string model, string version, Stage stage, string reason) => new(
        $"{model} {version} is in stage '{StageNames.ToWire(stage)}'{(reason.Length > 0 ? $" ({reason})" : "")}; pinned inference "
        + "serves versions from evaluating on (evaluating, shadow, canary, production, superseded)");

    // -- shadow -----------------------------------------------------------------------------------

    internal void StartShadow(string model, string shadowVersion, long generation, InferRequest request, double[] productionTop1, double productionMs)
    {
        if (Interlocked.Increment(ref _shadowsInFlight) > options.MaxShadowInFlight)
        {
            Interlocked.Decrement(ref _shadowsInFlight);
            metrics.ShadowDropped(model);
            request.Dispose();
            return;
        }
        // Fire and forget, off the caller's path: the shadow's answer is only compared and counted.
        _ = Task.Run(async () =>
        {
            try
            {
                await RunShadowAsync(model, shadowVersion, generation, request, productionTop1, productionMs);
            }
            catch (Exception error)
            {
                log.LogWarning("shadow copy to {Model} {Version} failed: {Error}", model, shadowVersion, error.Message);
            }
            finally
            {
                request.Dispose();
                Interlocked.Decrement(ref _shadowsInFlight);
            }
        });
    }

    private async Task RunShadowAsync(string model, string version, long generation, InferRequest request, double[] productionTop1, double productionMs)
    {
        var started = time.GetTimestamp();
        if (pool.GetReady(model, version) is not { } served || !served.TryLease())
        {
            return;
        }
        try
        {
            ItemResult result;
            BatchItem item;
            try
            {
                item = served.Onnx.Prepare(request, options.RejectNonfiniteInputs);
                result = await served.RunShadowAsync(item);
            }
            catch (Exception)
            {
                CountFailure(served, generation, routed: false, started);
                return;
            }
            using (result)
            {
                var latency = time.GetElapsedTime(started);
                var bad = result.Nonfinite && options.NonfiniteIsError;
                rollups.Record(model, version, generation, routed: false, bad, result.Nonfinite, item.Rows, latency.TotalMilliseconds, result.ComputeMs, result.Outputs[served.Onnx.ScoreOutput]);
                served.Metrics.Request(result.Nonfinite ? Outcome.Nonfinite : Outcome.Ok, latency.TotalSeconds);
                var top1 = Scores.Top1(result.Outputs[served.Onnx.ScoreOutput]);
                rollups.RecordShadowPair(model, version, generation, flipped: !top1.AsSpan().SequenceEqual(productionTop1), latency.TotalMilliseconds - productionMs);
            }
        }
        finally
        {
            served.Return();
        }
    }
}

/// <summary>
/// A served request: which version answered, its outputs, the model's output order. Disposing it
/// returns the version's lease and the output buffers, and starts the shadow copy if this request
/// was sampled (the shadow then owns the request).
/// </summary>
public sealed class InferOutcome : IDisposable
{
    private readonly InferenceDataPlane _owner;
    private readonly ServedVersion _served;
    private readonly InferRequest _request;
    private readonly string? _shadow;
    private readonly long _shadowGeneration;
    private readonly double _latencyMs;
    private int _disposed;

    internal InferOutcome(InferenceDataPlane owner, ServedVersion served, ItemResult result, InferRequest request, string? shadow, long shadowGeneration, double latencyMs)
    {
        _shadowGeneration = shadowGeneration;
        _owner = owner;
        _served = served;
        Result = result;
        _request = request;
        _shadow = shadow;
        _latencyMs = latencyMs;
    }

    public string Model => _served.Model;

    public string Version => _served.Version;

    public ItemResult Result { get; }

    public OnnxVersion Onnx => _served.Onnx;

    public InferRequest Request => _request;

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }
        if (_shadow is not null)
        {
            var top1 = Scores.Top1(Result.Outputs[_served.Onnx.ScoreOutput]);
            _owner.StartShadow(_served.Model, _shadow, _shadowGeneration, _request, top1, _latencyMs);
        }
        else
        {
            _request.Dispose();
        }
        Result.Dispose();
        _served.Return();
    }
}
