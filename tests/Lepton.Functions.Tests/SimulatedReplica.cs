using System.Collections.Concurrent;
using Lepton.Shared.Metrics;
using Lepton.Shared.Policies;
using Lepton.Shared.Registry;
using Lepton.Shared.Workers;

namespace Lepton.Functions.Tests;

/// <summary>How a simulated replica's version behaves: errors, latency, shadow disagreement.</summary>
public sealed record Behaviour
{
    public double ErrorRate { get; init; }

    public double LatencyMs { get; init; } = 4.0;

    /// <summary>Shadow: the share of paired requests whose top-1 class differs from production's.</summary>
    public double FlipRate { get; init; }

    /// <summary>
    /// As the candidate at 100 % (the last canary step, a blue-green bake): a regression that only
    /// appears under full load, where production gets no routed traffic to compare with.
    /// </summary>
    public double? ErrorRateAtFullWeight { get; init; }

    /// <summary>The share of requests the router sends the candidate, against the weight it was told (1 = obeys).</summary>
    public double CandidateShareSkew { get; init; } = 1.0;
}

/// <summary>
/// A simulated worker replica for lifecycle tests, writing what a real replica writes to storage:
/// a <c>workers</c> heartbeat listing the versions it has ready (every version the routes name,
/// except those told never to warm) and the route generation it applies, and one <c>metrics</c>
/// rollup per (second, version, route generation) with request, error and latency counts that
/// follow the routes' weights, so the real lifecycle reads exactly what a replica would write.
/// Like the real worker it fails static: when storage cannot be read it keeps serving the routes
/// it has, and rollups it could not write are kept and written when storage answers again. Port
/// of the reference's <c>fakeworker.py</c>.
/// </summary>
public sealed class SimulatedReplica(ModelRegistry registry, WorkerDirectory workers, MetricsStore metrics, string model) : IAsyncDisposable
{
    private readonly Dictionary<(long Second, string Version, long Generation), WindowRollup> _totals = [];
    private readonly HashSet<(long Second, string Version, long Generation)> _dirty = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly object _gate = new();
    private Routes? _routes;
    private Task? _loop;
    private int _ticks;

    /// <summary>Its name in the <c>workers</c> table, which every test shares: unique per model, so tests never overwrite each other's heartbeats.</summary>
    public string Replica { get; init; } = $"sim-1-{model}";

    public int RequestsPerTick { get; init; } = 120;

    public TimeSpan Tick { get; init; } = TimeSpan.FromMilliseconds(150);

    public ConcurrentDictionary<string, byte> NeverWarm { get; } = new();

    public ConcurrentDictionary<string, Behaviour> Behaviour { get; } = new();

    /// <summary>Whether it writes its rollups (false: it serves and heartbeats, but its rollups never arrive).</summary>
    public bool WritesRollups { get; set; } = true;

    /// <summary>Whether it reads new routes (false: it keeps applying the ones it has, as a replica cut off from the routes table).</summary>
    public bool FollowsRoutes { get; set; } = true;

    /// <summary>Whether it heartbeats (false: as a replica that died, or cannot reach storage at all).</summary>
    public bool Heartbeats { get; set; } = true;

    /// <summary>Requests it served per version (all generations), as callers saw them.</summary>
    public ConcurrentDictionary<string, long> Served { get; } = new();

    /// <summary>Ticks run so far (a signal that it is making progress).</summary>
    public int Ticks => Volatile.Read(ref _ticks);

    public SimulatedReplica Start()
    {
        _loop = Task.Run(RunAsync);
        return this;
    }

    private async Task RunAsync()
    {
        using var timer = new PeriodicTimer(Tick);
        do
        {
            try
            {
                await TickAsync(_stop.Token);
            }
            catch (Exception) when (!_stop.IsCancellationRequested)
            {
                // A storage hiccup under load: what was not written is written at the next tick.
            }
            Interlocked.Increment(ref _ticks);
        }
        while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false));
    }

    public async Task TickAsync(CancellationToken cancellationToken)
    {
        // The tick's requests arrive now, routed by the routes this replica applies now.
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        if (FollowsRoutes || _routes is null)
        {
            try
            {
                _routes = await registry.GetRoutesAsync(model, cancellationToken);
            }
            catch (Exception) when (_routes is not null && !cancellationToken.IsCancellationRequested)
            {
                // Fail static: storage unreachable, keep serving the routes we have.
            }
        }
        var routes = _routes!;
        var ready = routes.NamedVersions().Where(v => !NeverWarm.ContainsKey(v)).Order(StringComparer.Ordinal).ToList();
        Serve(now, routes, ready);
        if (Heartbeats)
        {
            try
            {
                await workers.BeatAsync(new Heartbeat
                {
                    Replica = Replica,
                    Url = "http://127.0.0.1:0",
                    Provider = "CPUExecutionProvider",
                    At = DateTimeOffset.UtcNow,
                    Loaded = new Dictionary<string, IReadOnlyList<string>> { [model] = ready },
                    Ready = new Dictionary<string, IReadOnlyList<string>> { [model] = ready },
                    RouteGenerations = new Dictionary<string, long> { [model] = routes.Generation },
                }, cancellationToken);
            }
            catch (Exception) when (!cancellationToken.IsCancellationRequested)
            {
            }
        }
        if (WritesRollups && Heartbeats)
        {
            await FlushAsync(cancellationToken);
        }
    }

    /// <summary>The tick's requests, split by the routes' weights and counted under their generation.</summary>
    private void Serve(long now, Routes routes, List<string> ready)
    {
        if (routes.Production is not { } production)
        {
            return;
        }
        var n = RequestsPerTick;
        var toCandidate = 0;
        if (routes.Candidate is { } candidate && ready.Contains(candidate))
        {
            var skew = Behaviour.GetValueOrDefault(candidate)?.CandidateShareSkew ?? 1.0;
            toCandidate = (int)Math.Min(n, Math.Round(n * routes.CandidateWeightBp / (double)Policy.BasisPoints * skew, MidpointRounding.ToEven));
        }
        var split = new Dictionary<string, int> { [production] = n - toCandidate };
        if (toCandidate > 0)
        {
            split[routes.Candidate!] = toCandidate;
        }
        var shadowCopies = 0;
        if (routes.Shadow is { } shadow && ready.Contains(shadow) && routes.ShadowFractionBp > 0)
        {
            shadowCopies = (int)Math.Round(split[production] * routes.ShadowFractionBp / (double)Policy.BasisPoints, MidpointRounding.ToEven);
        }
        var full = toCandidate == n ? routes.Candidate : null;
        foreach (var (version, routed) in split)
        {
            Add(now, routes.Generation, version, routed, routed, 0, version == full);
        }
        if (shadowCopies > 0)
        {
            Add(now, routes.Generation, routes.Shadow!, shadowCopies, 0, shadowCopies, false);
        }
    }

    private void Add(long now, long generation, string version, int requests, int routed, int pairs, bool fullWeight)
    {
        if (requests == 0)
        {
            return;
        }
        Served.AddOrUpdate(version, routed, (_, total) => total + routed);
        var how = Behaviour.GetValueOrDefault(version) ?? new Behaviour();
        var rate = fullWeight && how.ErrorRateAtFullWeight is { } atFull ? atFull : how.ErrorRate;
        var buckets = new long[LatencyHistogram.Count];
        buckets[LatencyHistogram.IndexOf(how.LatencyMs)] = requests;
        var bins = new long[WindowRollup.ScoreBins];
        bins[^1] = requests; // confident predictions, the same shape for every version
        var tick = new WindowRollup
        {
            Model = model,
            Version = version,
            Replica = Replica,
            WindowStart = now,
            WindowSeconds = 1,
            RouteGeneration = generation,
            Requests = requests,
            RoutedRequests = routed,
            Errors = (long)Math.Round(requests * rate, MidpointRounding.ToEven),
            Rows = requests,
            LatencyBuckets = buckets,
            LatencySumMs = how.LatencyMs * requests,
            ComputeMs = 0.05 * requests,
            ScoreBinCounts = bins,
            ShadowPairs = pairs,
            ShadowFlips = (long)Math.Round(pairs * how.FlipRate, MidpointRounding.ToEven),
            PairedLatencyDiffMs = new double[Math.Min(pairs, 8)],
        };
        var key = (now, version, generation);
        lock (_gate)
        {
            _totals[key] = _totals.TryGetValue(key, out var sum) ? sum.Merge(tick) with { Replica = Replica, RouteGeneration = generation } : tick;
            _dirty.Add(key);
        }
    }

    /// <summary>Writes every changed window; one that fails stays changed and is written at the next tick.</summary>
    private async Task FlushAsync(CancellationToken cancellationToken)
    {
        List<WindowRollup> pending;
        lock (_gate)
        {
            pending = _dirty.Where(_totals.ContainsKey).Select(k => _totals[k]).ToList();
            _dirty.Clear();
            var old = DateTimeOffset.UtcNow.ToUnixTimeSeconds() - 120;
            foreach (var key in _totals.Keys.Where(k => k.Second < old).ToList())
            {
                _totals.Remove(key);
            }
        }
        for (var i = 0; i < pending.Count; i++)
        {
            try
            {
                await metrics.WriteAsync(pending[i], cancellationToken);
            }
            catch (Exception)
            {
                lock (_gate)
                {
                    foreach (var unwritten in pending.Skip(i))
                    {
                        _dirty.Add((unwritten.WindowStart, unwritten.Version, unwritten.RouteGeneration));
                    }
                }
                throw;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        if (_loop is not null)
        {
            try
            {
                await _loop;
            }
            catch (OperationCanceledException)
            {
            }
        }
        _stop.Dispose();
    }
}
