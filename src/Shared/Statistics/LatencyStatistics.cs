using Lepton.Shared.Metrics;

namespace Lepton.Shared.Statistics;

/// <summary>U of the candidate's latencies and the one-sided p that the candidate is slower.</summary>
public readonly record struct MannWhitneyResult(double U, double PValue);

/// <summary>
/// Latency statistics over the rollups' histograms (<see cref="LatencyHistogram.BoundsMs"/>).
/// Histograms are all a rollup keeps, and they add exactly over replicas and windows, so both the
/// p95 and the rank test are read from bucket counts.
/// </summary>
public static class LatencyStatistics
{
    /// <summary>
    /// Upper bound (ms) of the bucket holding the 95th percentile: the smallest bucket whose
    /// cumulative count reaches 95 % of the total. <see cref="double.PositiveInfinity"/> when it
    /// falls in the overflow bucket, <see cref="double.NaN"/> for an empty histogram.
    /// </summary>
    public static double P95FromBuckets(ReadOnlySpan<long> buckets)
    {
        CheckBuckets("buckets", buckets);
        double total = 0;
        foreach (var count in buckets)
        {
            total += count;
        }
        if (total == 0)
        {
            return double.NaN;
        }
        var target = 0.95 * total;
        double cumulative = 0;
        for (var i = 0; i < buckets.Length; i++)
        {
            cumulative += buckets[i];
            if (cumulative >= target)
            {
                return LatencyHistogram.BoundsMs[i];
            }
        }
        return LatencyHistogram.BoundsMs[^1];
    }

    /// <summary>
    /// One-sided Mann-Whitney U test that <paramref name="candidate"/>'s latencies are larger
    /// (slower) than <paramref name="production"/>'s, over bucket counts.
    /// </summary>
    /// <remarks>
    /// Every latency in a bucket ties with the others there; U counts a tie as ½ and the variance
    /// carries the usual tie correction. Normal approximation with continuity correction, as
    /// <c>scipy.stats.mannwhitneyu(method="asymptotic")</c>: ranks ignore how wide the buckets are
    /// and are robust to latency's heavy tail, and the approximation is exact enough at canary
    /// sample sizes. p = 1 when either side is empty or every latency shares one bucket. It is not
    /// always valid, which is why the policy's latency level is stricter and the p95 gate needs a
    /// large effect as well.
    /// </remarks>
    public static MannWhitneyResult MannWhitneyFromBuckets(ReadOnlySpan<long> candidate, ReadOnlySpan<long> production)
    {
        CheckBuckets("candidate buckets", candidate);
        CheckBuckets("production buckets", production);
        double nA = 0, nB = 0;
        for (var i = 0; i < candidate.Length; i++)
        {
            nA += candidate[i];
            nB += production[i];
        }
        if (nA == 0 || nB == 0)
        {
            return new MannWhitneyResult(0.0, 1.0);
        }
        double u = 0, belowB = 0, tieTerm = 0;
        for (var i = 0; i < candidate.Length; i++)
        {
            double a = candidate[i], b = production[i];
            // Production latencies in strictly faster buckets count 1, those in the same bucket ½.
            u += a * (belowB + (0.5 * b));
            belowB += b;
            var ties = a + b;
            tieTerm += (ties * ties * ties) - ties;
        }
        var n = nA + nB;
        var variance = nA * nB / 12.0 * (n + 1 - (tieTerm / (n * (n - 1))));
        if (variance <= 0)
        {
            return new MannWhitneyResult(u, 1.0);
        }
        var z = (u - (nA * nB / 2.0) - 0.5) / Math.Sqrt(variance);
        return new MannWhitneyResult(u, Distributions.NormalSf(z));
    }

    private static void CheckBuckets(string name, ReadOnlySpan<long> buckets)
    {
        if (buckets.Length != LatencyHistogram.Count)
        {
            throw new InvalidInputException(
                $"{name} must hold {LatencyHistogram.Count} latency bucket counts (LatencyHistogram.BoundsMs), got {buckets.Length}");
        }
        foreach (var count in buckets)
        {
            if (count < 0)
            {
                throw new InvalidInputException($"{name} must hold counts ≥ 0, got [{string.Join(", ", buckets.ToArray())}]");
            }
        }
    }
}
