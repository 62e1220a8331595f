using System.Collections.Concurrent;
using System.Globalization;
using Lepton.GpuWorker.Configuration;
using Lepton.GpuWorker.Observability;
using Lepton.Shared;
using Lepton.Shared.Models;
using Lepton.Shared.Registry;

namespace Lepton.GpuWorker.Serving;

/// <summary>Where a version stands on this replica.</summary>
public enum SlotState
{
    Loading,
    Ready,
    Failed,
}

/// <summary>One version's place in the pool.</summary>
public sealed class Slot(string model, string version, long now)
{
    private long _lastUsed = now;

    public string Model { get; } = model;

    public string Version { get; } = version;

    public SlotState State { get; internal set; } = SlotState.Loading;

    public long Footprint { get; internal set; }

    public ServedVersion? Served { get; internal set; }

    /// <summary>Why loading failed (a sentence for the caller; never a local path).</summary>
    public string Error { get; internal set; } = "";

    public bool Refused { get; internal set; }

    public long FailedAt { get; internal set; }

    public long LastUsed => Interlocked.Read(ref _lastUsed);

    internal void Touch(long now) => Interlocked.Exchange(ref _lastUsed, now);
}

/// <summary>
/// The versions resident on this replica: loading (verified download, footprint estimated before
/// ONNX Runtime sees the file, one warm-up inference before ready), the memory budget and unloading.
/// When the budget cannot hold a version, idle versions that carry no traffic are evicted least
/// recently used first; production, candidate, shadow and the last known-good version are never
/// evicted, and a load that still does not fit is refused with a reason naming what is resident.
/// </summary>
public sealed class VersionPool : IAsyncDisposable
{
    private const double Mib = 1024 * 1024;

    // A failed load is retried after this long, so a broken version does not hammer storage.
    public static readonly TimeSpan RetryFailedAfter = TimeSpan.FromSeconds(10);

    private readonly ConcurrentDictionary<(string, string), Slot> _slots = new();
    private readonly SemaphoreSlim _reserve = new(1, 1);
    private readonly ModelRegistry _registry;
    private readonly ModelStore _store;
    private readonly ProviderChoice _choice;
    private readonly ExecutionOptions _execution;
    private readonly WorkerMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly InferenceThreads _threads;
    private readonly ILogger _log;
    private readonly CancellationTokenSource _stopping = new();
    private volatile IReadOnlyDictionary<(string, string), string> _protected = new Dictionary<(string, string), string>();

    public VersionPool(
        ModelRegistry registry,
        ModelStore store,
        ProviderChoice choice,
        ExecutionOptions execution,
        LoaderOptions loader,
        WorkerMetrics metrics,
        TimeProvider time,
        InferenceThreads threads,
        ILogger<VersionPool> log)
    {
        _threads = threads;
        _registry = registry;
        _store = store;
        _choice = choice;
        _execution = execution;
        _metrics = metrics;
        _time = time;
        _log = log;
        Budget = loader.MemoryBudgetBytes;
    }

    /// <summary>Raised (off the request path) when a version becomes ready, fails or goes away.</summary>
    public event Action<string>? Changed;

    public long Budget { get; }

    public long Used => _slots.Values.Where(s => s.State != SlotState.Failed).Sum(s => s.Footprint);

    public ServedVersion? GetReady(string model, string version)
    {
        if (_slots.TryGetValue((model, version), out var slot) && slot.State == SlotState.Ready)
        {
            slot.Touch(_time.GetTimestamp());
            return slot.Served;
        }
        return null;
    }

    public bool IsReady(string model, string version) =>
        _slots.TryGetValue((model, version), out var slot) && slot.State == SlotState.Ready;

    public Slot? Find(string model, string version) => _slots.GetValueOrDefault((model, version));

    public IReadOnlyList<Slot> Slots => [.. _slots.Values];

    /// <summary>Model → versions (sorted), in <paramref name="state"/> or, when null, loading or ready.</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<string>> Versions(SlotState? state = null) =>
        _slots.Values
            .Where(s => state is null ? s.State != SlotState.Failed : s.State == state)
            .GroupBy(s => s.Model, StringComparer.Ordinal)
            .ToDictionary(g => g.Key, g => (IReadOnlyList<string>)g.Select(s => s.Version).Order(StringComparer.Ordinal).ToList(), StringComparer.Ordinal);

    /// <summary>Replaces the versions that must never be evicted (key → role, shown in refusals).</summary>
    public void Protect(IReadOnlyDictionary<(string, string), string> protectedVersions) => _protected = protectedVersions;

    /// <summary>Starts loading unless the version is loaded, loading, or failed less than <see cref="RetryFailedAfter"/> ago.</summary>
    public Slot RequestLoad(string model, string version)
    {
        var now = _time.GetTimestamp();
        while (true)
        {
            if (_slots.TryGetValue((model, version), out var existing)
                && (existing.State != SlotState.Failed || _time.GetElapsedTime(existing.FailedAt) < RetryFailedAfter))
            {
                return existing;
            }
            var slot = new Slot(model, version, now);
            var added = existing is null ? _slots.TryAdd((model, version), slot) : _slots.TryUpdate((model, version), slot, existing);
            if (added)
            {
                _ = Task.Run(() => LoadAsync(slot));
                return slot;
            }
        }
    }

    private async Task LoadAsync(Slot slot)
    {
        var token = _stopping.Token;
        OnnxVersion? onnx = null;
        try
        {
            var record = await _registry.GetVersionAsync(slot.Model, slot.Version, token);
            var path = await _store.GetVerifiedModelPathAsync(slot.Model, slot.Version, record.Sha256, token);
            var manifest = await _store.GetManifestAsync(slot.Model, slot.Version, token);
            var batching = manifest?.Batching ?? new Batching();
            var footprint = Footprint.Estimate(path);
            await ReserveAsync(slot, footprint);
            onnx = new OnnxVersion(slot.Model, slot.Version, path, _choice, batching.MaxBatchSize);
            double warmMs = 0;
            using (var warm = onnx.WarmUpRequest())
            {
                var item = onnx.Prepare(warm, rejectNonfinite: false);
                // Twice: the first run pays one-off initialization; the second is what a run costs,
                // the seed of the inline-or-thread decision.
                for (var run = 0; run < 2; run++)
                {
                    var results = onnx.RunBatch([item]);
                    warmMs = results[0].ComputeMs;
                    foreach (var result in results)
                    {
                        result.Dispose();
                    }
                }
            }
            var instruments = _metrics.For(slot.Model, slot.Version);
            slot.Served = new ServedVersion(
                onnx, instruments, TimeSpan.FromMilliseconds(batching.MaxDelayMs), _choice.BatchConcurrency(_execution.BatchConcurrency),
                _execution.InlineBelowMs, warmMs, footprint, _time, _threads);
            onnx = null;
            slot.Touch(_time.GetTimestamp());
            slot.State = SlotState.Ready;
            instruments.Ready(true);
            if (_log.IsEnabled(LogLevel.Information))
            {
                _log.LogInformation("{Model} {Version} ready ({Footprint:F1} MiB)", slot.Model, slot.Version, slot.Footprint / Mib);
            }
        }
        catch (OperationCanceledException) when (token.IsCancellationRequested)
        {
            _slots.TryRemove(new KeyValuePair<(string, string), Slot>((slot.Model, slot.Version), slot));
            return;
        }
        catch (Exception error)
        {
            onnx?.Dispose();
            slot.Error = error is LeptonException lepton ? lepton.Message : $"{error.GetType().Name}: {error.Message}";
            slot.Refused = error is NotReadyException;
            slot.FailedAt = _time.GetTimestamp();
            slot.Footprint = 0;
            slot.State = SlotState.Failed;
            _log.LogWarning("loading {Model} {Version} failed: {Error}", slot.Model, slot.Version, slot.Error);
        }
        Changed?.Invoke(slot.Model);
    }

    /// <summary>Makes room for <paramref name="footprint"/> bytes by evicting idle unprotected versions, or refuses.</summary>
    private async Task ReserveAsync(Slot slot, long footprint)
    {
        await _reserve.WaitAsync();
        try
        {
            var others = _slots.Values.Where(s => s != slot && s.State != SlotState.Failed).ToList();
            var used = others.Sum(s => s.Footprint);
            var victims = new List<Slot>();
            if (used + footprint > Budget)
            {
                var protectedVersions = _protected;
                foreach (var candidate in others
                    .Where(s => s.State == SlotState.Ready && !protectedVersions.ContainsKey((s.Model, s.Version)))
                    .OrderBy(s => s.LastUsed))
                {
                    if (used + footprint <= Budget)
                    {
                        break;
                    }
                    victims.Add(candidate);
                    used -= candidate.Footprint;
                }
                if (used + footprint > Budget)
                {
                    var resident = string.Join(", ", others.Select(s =>
                        $"{s.Model} {s.Version} {(s.Footprint / Mib).ToString("F0", CultureInfo.InvariantCulture)} MiB"
                        + (protectedVersions.TryGetValue((s.Model, s.Version), out var role) ? $" ({role})" : "")));
                    throw new NotReadyException(
                        $"{slot.Model} {slot.Version} needs about {(footprint / Mib).ToString("F0", CultureInfo.InvariantCulture)} MiB but only "
                        + $"{((Budget - used) / Mib).ToString("F0", CultureInfo.InvariantCulture)} MiB of the "
                        + $"{(Budget / Mib).ToString("F0", CultureInfo.InvariantCulture)} MiB budget ({WorkerSettingNames.MemoryBudgetMb}) can be freed; "
                        + $"resident: {(resident.Length > 0 ? resident : "nothing")}. Raise the budget, retire versions, or spread models over more replicas",
                        RetryFailedAfter);
                }
            }
            slot.Footprint = footprint;
            foreach (var victim in victims)
            {
                if (_log.IsEnabled(LogLevel.Information))
                {
                    _log.LogInformation("evicting {Model} {Version} to make room", victim.Model, victim.Version);
                }
                await UnloadAsync(victim.Model, victim.Version);
            }
        }
        finally
        {
            _reserve.Release();
        }
    }

    /// <summary>Puts an already loaded version in the pool as ready (benchmarks of the data plane without storage).</summary>
    internal void Adopt(ServedVersion served)
    {
        var slot = new Slot(served.Model, served.Version, _time.GetTimestamp()) { Served = served, Footprint = served.Footprint, State = SlotState.Ready };
        _slots[(served.Model, served.Version)] = slot;
    }

    /// <summary>Forgets a version; requests holding a lease on it finish on it.</summary>
    public async Task UnloadAsync(string model, string version)
    {
        if (_slots.TryRemove((model, version), out var slot))
        {
            _metrics.For(model, version).Ready(false);
            Changed?.Invoke(model);
            if (slot.Served is { } served)
            {
                await served.DisposeAsync();
            }
        }
    }

    /// <summary>Unloads versions that are not protected and unused for <paramref name="grace"/>; returns them.</summary>
    public async Task<IReadOnlyList<(string Model, string Version)>> UnloadIdleAsync(TimeSpan grace)
    {
        var protectedVersions = _protected;
        var idle = _slots.Values
            .Where(s => s.State != SlotState.Loading && !protectedVersions.ContainsKey((s.Model, s.Version)) && _time.GetElapsedTime(s.LastUsed) >= grace)
            .Select(s => (s.Model, s.Version))
            .ToList();
        foreach (var (model, version) in idle)
        {
            await UnloadAsync(model, version);
        }
        return idle;
    }

    public async ValueTask DisposeAsync()
    {
        await _stopping.CancelAsync();
        foreach (var key in _slots.Keys.ToList())
        {
            await UnloadAsync(key.Item1, key.Item2);
        }
        _stopping.Dispose();
        _reserve.Dispose();
    }
}
