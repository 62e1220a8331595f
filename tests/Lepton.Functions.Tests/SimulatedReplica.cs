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
/// except those told never to warm) and one <c>metrics</c> rollup per (second, version) with
/// request, error and latency counts that follow the routes' weights, so the real lifecycle reads
/// exactly what a replica would write. Port of the reference's <c>fakeworker.py</c>.
/// </summary>
public sealed class SimulatedReplica(ModelRegistry registry, WorkerDirectory workers, MetricsStore metrics, string model) : IAsyncDisposable
{
    private readonly Dictionary<(long Second, string Version), WindowRollup> _totals = [];
    private readonly CancellationTokenSource _stop = new();
    private Task? _loop;

    public string Replica { get; init; } = "sim-1";

    public int RequestsPerTick { get; init; } = 120;

    public TimeSpan Tick { get; init; } = TimeSpan.FromMilliseconds(150);

    public ConcurrentDictionary<string, byte> NeverWarm { get; } = new();

    public ConcurrentDictionary<string, Behaviour> Behaviour { get; } = new();

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
                // A storage hiccup under load: the next tick writes the totals again.
            }
        }
        while (await timer.WaitForNextTickAsync(_stop.Token).ConfigureAwait(false));
    }

    public async Task TickAsync(CancellationToken cancellationToken)
    {
        // The tick's requests arrive now, routed by the routes known now: timestamping them after
        // the (possibly slow) storage calls would put traffic routed under an old weight into a
        // window the lifecycle counts for the new one.
        var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        var routes = await registry.GetRoutesAsync(model, cancellationToken);
        var ready = routes.NamedVersions().Where(v => !NeverWarm.ContainsKey(v)).Order(StringComparer.Ordinal).ToList();
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
            await AddAsync(now, version, routed, routed, 0, version == full, cancellationToken);
        }
        if (shadowCopies > 0)
        {
            await AddAsync(now, routes.Shadow!, shadowCopies, 0, shadowCopies, false, cancellationToken);
        }
    }

    private async Task AddAsync(long now, string version, int requests, int routed, int pairs, bool fullWeight, CancellationToken cancellationToken)
    {
        if (requests == 0)
        {
            return;
        }
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
        var key = (now, version);
        var total = _totals.TryGetValue(key, out var sum) ? sum.Merge(tick) with { Replica = Replica } : tick;
        _totals[key] = total;
        await metrics.WriteAsync(total, cancellationToken);
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
