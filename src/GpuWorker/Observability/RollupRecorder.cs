using System.Collections.Concurrent;
using Lepton.GpuWorker.Serving;
using Lepton.GpuWorker.Tensors;
using Lepton.Shared.Metrics;

namespace Lepton.GpuWorker.Observability;

/// <summary>
/// Per-window rollups of what each version did on this replica, for canary analysis. The request
/// path only adds numbers to an in-memory accumulator (under that accumulator's own lock); the
/// flusher takes immutable <see cref="WindowRollup"/> snapshots of the windows that changed and
/// upserts them. Windows are aligned to multiples of the window length in unix seconds; each upsert
/// carries the window's running total, so a repeated or late write is harmless (last write wins).
/// Requests are kept apart by the route generation they were routed under, so a window in which the
/// routes changed yields one rollup per generation and the lifecycle judges a canary step on exactly
/// the traffic its weights routed.
/// </summary>
public sealed class RollupRecorder(string replica, int windowSeconds, TimeProvider time, Random? random = null)
{
    private readonly ConcurrentDictionary<(string Model, string Version, long Window, long Generation), Accumulator> _windows = new();
    private readonly Random _random = random ?? Random.Shared;

    public string Replica => replica;

    public int WindowSeconds => windowSeconds;

    private long CurrentWindow()
    {
        var now = time.GetUtcNow().ToUnixTimeSeconds();
        return now - (now % windowSeconds);
    }

    private Accumulator For(string model, string version, long routeGeneration) =>
        _windows.GetOrAdd((model, version, CurrentWindow(), routeGeneration), static _ => new Accumulator());

    /// <summary>One request this version answered (routed, pinned or shadow) under routes of <paramref name="routeGeneration"/>.</summary>
    public void Record(
        string model,
        string version,
        long routeGeneration,
        bool routed,
        bool error,
        bool nonfinite,
        int rows,
        double latencyMs,
        double computeMs,
        TensorData? scoreOutput)
    {
        var acc = For(model, version, routeGeneration);
        lock (acc)
        {
            acc.Requests++;
            acc.RoutedRequests += routed ? 1 : 0;
            acc.Errors += error ? 1 : 0;
            acc.Nonfinite += nonfinite ? 1 : 0;
            acc.Rows += rows;
            acc.LatencyBuckets[LatencyHistogram.IndexOf(latencyMs)]++;
            acc.LatencySumMs += latencyMs;
            acc.ComputeMs += computeMs;
            if (scoreOutput is not null)
            {
                Scores.AddToBins(scoreOutput, acc.ScoreBins);
            }
            acc.Dirty = true;
        }
    }

    /// <summary>A shadow response compared with production's on the same request.</summary>
    public void RecordShadowPair(string model, string shadowVersion, long routeGeneration, bool flipped, double latencyDiffMs)
    {
        var acc = For(model, shadowVersion, routeGeneration);
        lock (acc)
        {
            acc.ShadowPairs++;
            acc.ShadowFlips += flipped ? 1 : 0;
            // Reservoir sampling keeps a uniform bounded sample of the window's differences.
            acc.PairedSeen++;
            if (double.IsFinite(latencyDiffMs) && acc.Paired.Count < WindowRollup.MaxPairedSamples)
            {
                acc.Paired.Add(latencyDiffMs);
            }
            else if (double.IsFinite(latencyDiffMs))
            {
                var slot = _random.NextInt64(acc.PairedSeen);
                if (slot < WindowRollup.MaxPairedSamples)
                {
                    acc.Paired[(int)slot] = latencyDiffMs;
                }
            }
            acc.Dirty = true;
        }
    }

    /// <summary>Snapshots of every window changed since the last call; old clean windows are dropped.</summary>
    public IReadOnlyList<WindowRollup> TakeDirty()
    {
        var current = CurrentWindow();
        var rollups = new List<WindowRollup>();
        foreach (var (key, acc) in _windows)
        {
            lock (acc)
            {
                if (acc.Dirty)
                {
                    rollups.Add(Snapshot(key, acc));
                    acc.Dirty = false;
                    continue;
                }
            }
            if (key.Window < current)
            {
                _windows.TryRemove(key, out _);
            }
        }
        return rollups;
    }

    /// <summary>Windows held in memory now: the current ones and every one not yet written.</summary>
    public int Buffered => _windows.Count;

    /// <summary>
    /// Keeps at most <paramref name="bound"/> windows, dropping the oldest (never a current one) when
    /// storage has been away too long to hold them all; returns the window starts dropped (oldest
    /// first). Called by the flusher, off the request path.
    /// </summary>
    public IReadOnlyList<long> DropOldest(int bound)
    {
        var excess = _windows.Count - bound;
        if (excess <= 0)
        {
            return [];
        }
        var current = CurrentWindow();
        var dropped = new List<long>(excess);
        foreach (var key in _windows.Keys.Where(k => k.Window < current)
            .OrderBy(k => k.Window).ThenBy(k => k.Model, StringComparer.Ordinal).ThenBy(k => k.Version, StringComparer.Ordinal).Take(excess))
        {
            if (_windows.TryRemove(key, out _))
            {
                dropped.Add(key.Window);
            }
        }
        return dropped;
    }

    /// <summary>Marks snapshots that could not be written as changed again, so the next flush retries them.</summary>
    public void Restore(IEnumerable<WindowRollup> unwritten)
    {
        foreach (var rollup in unwritten)
        {
            if (_windows.TryGetValue((rollup.Model, rollup.Version, rollup.WindowStart, rollup.RouteGeneration), out var acc))
            {
                lock (acc)
                {
                    acc.Dirty = true;
                }
            }
        }
    }

    private WindowRollup Snapshot((string Model, string Version, long Window, long Generation) key, Accumulator acc) => new()
    {
        Model = key.Model,
        Version = key.Version,
        Replica = replica,
        WindowStart = key.Window,
        RouteGeneration = key.Generation,
        WindowSeconds = windowSeconds,
        Requests = acc.Requests,
        RoutedRequests = acc.RoutedRequests,
        Errors = acc.Errors,
        Nonfinite = acc.Nonfinite,
        Rows = acc.Rows,
        LatencyBuckets = (long[])acc.LatencyBuckets.Clone(),
        LatencySumMs = acc.LatencySumMs,
        ComputeMs = acc.ComputeMs,
        ScoreBinCounts = (long[])acc.ScoreBins.Clone(),
        ShadowPairs = acc.ShadowPairs,
        ShadowFlips = acc.ShadowFlips,
        PairedLatencyDiffMs = [.. acc.Paired],
    };

    private sealed class Accumulator
    {
        public long Requests;
        public long RoutedRequests;
        public long Errors;
        public long Nonfinite;
        public long Rows;
        public readonly long[] LatencyBuckets = new long[LatencyHistogram.Count];
        public double LatencySumMs;
        public double ComputeMs;
        public readonly long[] ScoreBins = new long[WindowRollup.ScoreBins];
        public long ShadowPairs;
        public long ShadowFlips;
        public long PairedSeen;
        public readonly List<double> Paired = [];
        public bool Dirty = true;
    }
}
