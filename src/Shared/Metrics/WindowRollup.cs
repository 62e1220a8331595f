namespace Lepton.Shared.Metrics;

/// <summary>
/// Fixed latency histogram buckets (upper bounds in ms; the last is everything above 5 s). Windows
/// and replicas add up exactly, and rank tests run on the buckets. The bounds are the reference's
/// (<c>shared/testvectors</c> lists them).
/// </summary>
public static class LatencyHistogram
{
    public static readonly IReadOnlyList<double> BoundsMs =
    [
        0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1000, 2000, 5000,
        double.PositiveInfinity,
    ];

    public static int Count => BoundsMs.Count;

    /// <summary>Index of the bucket that holds a latency of <paramref name="ms"/> milliseconds.</summary>
    public static int IndexOf(double ms)
    {
        for (var i = 0; i < BoundsMs.Count - 1; i++)
        {
            if (ms <= BoundsMs[i])
            {
                return i;
            }
        }
        return BoundsMs.Count - 1;
    }
}

/// <summary>
/// What one replica saw of one version during one window; summed over replicas and windows by the
/// canary analysis (<see cref="Merge"/>).
/// </summary>
public sealed record WindowRollup
{
    /// <summary>Bins of the top-1 score (classification) or first output (regression) for the PSI.</summary>
    public const int ScoreBins = 10;

    /// <summary>Bounded reservoir of paired shadow latency differences kept per window and replica.</summary>
    public const int MaxPairedSamples = 256;

    /// <summary>
    /// The longest rollup window the lifecycle reads back: a step's rows are looked up from this
    /// long before the step's route change (a window straddling the change starts before it).
    /// </summary>
    public const int MaxWindowSeconds = 3600;

    public required string Model { get; init; }

    public required string Version { get; init; }

    public required string Replica { get; init; }

    /// <summary>Unix seconds, a multiple of <see cref="WindowSeconds"/>.</summary>
    public required long WindowStart { get; init; }

    /// <summary>
    /// The generation of the routes the replica applied to these requests (<c>Routes.Generation</c>):
    /// a window in which the routes changed has one row per generation it served, so the lifecycle
    /// judges a canary step on exactly the traffic routed under that step's weights. 0: unknown
    /// (no routes applied yet); in a sum over generations, the sum's own generation when all agree.
    /// </summary>
    public long RouteGeneration { get; init; }

    public required int WindowSeconds { get; init; }

    /// <summary>Every request this version answered (routed, pinned or shadow).</summary>
    public long Requests { get; init; }

    /// <summary>Requests the weighted router sent here (used for the sample-ratio check).</summary>
    public long RoutedRequests { get; init; }

    /// <summary>Failed requests, non-finite outputs included.</summary>
    public long Errors { get; init; }

    public long Nonfinite { get; init; }

    /// <summary>Predictions made (a request may carry several rows).</summary>
    public long Rows { get; init; }

    public long[] LatencyBuckets { get; init; } = new long[LatencyHistogram.Count];

    public double LatencySumMs { get; init; }

    /// <summary>ONNX Runtime time spent for this version (resource use R).</summary>
    public double ComputeMs { get; init; }

    [System.Text.Json.Serialization.JsonPropertyName("score_bins")]
    public long[] ScoreBinCounts { get; init; } = new long[ScoreBins];

    /// <summary>Shadow: responses compared with production on the same request.</summary>
    public long ShadowPairs { get; init; }

    /// <summary>Shadow: pairs whose top-1 class differs from production's.</summary>
    public long ShadowFlips { get; init; }

    /// <summary>Shadow: candidate − production latency per pair (ms), sampled.</summary>
    public double[] PairedLatencyDiffMs { get; init; } = [];

    /// <summary>An empty rollup of all replicas (<c>*</c>) for one version and window.</summary>
    public static WindowRollup Empty(string model, string version, long windowStart, int windowSeconds) =>
        new() { Model = model, Version = version, Replica = "*", WindowStart = windowStart, WindowSeconds = windowSeconds };

    /// <summary>The sum of two rollups of the same model and version (any replica or window).</summary>
    public WindowRollup Merge(WindowRollup other) => this with
    {
        Replica = other.Replica == Replica ? Replica : "*",
        WindowStart = Math.Min(WindowStart, other.WindowStart),
        RouteGeneration = other.RouteGeneration == RouteGeneration ? RouteGeneration : 0,
        Requests = Requests + other.Requests,
        RoutedRequests = RoutedRequests + other.RoutedRequests,
        Errors = Errors + other.Errors,
        Nonfinite = Nonfinite + other.Nonfinite,
        Rows = Rows + other.Rows,
        LatencyBuckets = Add(LatencyBuckets, other.LatencyBuckets),
        LatencySumMs = LatencySumMs + other.LatencySumMs,
        ComputeMs = ComputeMs + other.ComputeMs,
        ScoreBinCounts = Add(ScoreBinCounts, other.ScoreBinCounts),
        ShadowPairs = ShadowPairs + other.ShadowPairs,
        ShadowFlips = ShadowFlips + other.ShadowFlips,
        PairedLatencyDiffMs = [.. PairedLatencyDiffMs, .. other.PairedLatencyDiffMs],
    };

    /// <summary>The sum of <paramref name="rollups"/>, or <c>null</c> when there are none.</summary>
    public static WindowRollup? Sum(IEnumerable<WindowRollup> rollups)
    {
        WindowRollup? total = null;
        foreach (var rollup in rollups)
        {
            total = total is null ? rollup : total.Merge(rollup);
        }
        return total;
    }

    private static long[] Add(long[] a, long[] b)
    {
        if (a.Length != b.Length)
        {
            throw new InvalidInputException($"cannot add histograms of {a.Length} and {b.Length} buckets");
        }
        var sum = new long[a.Length];
        for (var i = 0; i < a.Length; i++)
        {
            sum[i] = a[i] + b[i];
        }
        return sum;
    }
}
