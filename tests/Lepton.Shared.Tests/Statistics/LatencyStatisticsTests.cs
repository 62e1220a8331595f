using CsCheck;
using Lepton.Shared.Metrics;
using Lepton.Shared.Statistics;
using MathNet.Numerics.Distributions;
using MathNet.Numerics.Statistics;
using static Lepton.Shared.Tests.Statistics.Rollups;

namespace Lepton.Shared.Tests.Statistics;

public sealed class LatencyStatisticsTests
{
    private static readonly int N = LatencyHistogram.Count;

    [Fact]
    public void P95_is_the_upper_bound_of_the_bucket_holding_it()
    {
        var counts = new long[N];
        counts[LatencyHistogram.IndexOf(3.0)] = 94; // ≤ 3 ms bucket
        counts[LatencyHistogram.IndexOf(9.0)] = 6; // ≤ 10 ms bucket
        Assert.Equal(10.0, LatencyStatistics.P95FromBuckets(counts));
        counts[LatencyHistogram.IndexOf(3.0)] = 95;
        counts[LatencyHistogram.IndexOf(9.0)] = 5;
        Assert.Equal(3.0, LatencyStatistics.P95FromBuckets(counts));
    }

    [Fact]
    public void P95_edges_and_bad_histograms()
    {
        Assert.True(double.IsNaN(LatencyStatistics.P95FromBuckets(new long[N])));
        Assert.Equal(double.PositiveInfinity, LatencyStatistics.P95FromBuckets(BucketsOf(Enumerable.Repeat(10_000.0, 10))));
        Assert.Contains($"must hold {N} latency bucket counts", Assert.Throws<InvalidInputException>(() => LatencyStatistics.P95FromBuckets([1, 2, 3])).Message);
        var negative = new long[N];
        negative[0] = -1;
        Assert.Contains("counts ≥ 0", Assert.Throws<InvalidInputException>(() => LatencyStatistics.P95FromBuckets(negative)).Message);
    }

    [Fact]
    public void P95_is_the_inverse_empirical_cdf_of_the_bucket_bounds()
    {
        // 4999 latencies so 95 % of the count is not a whole number (no tie at the cut).
        var latencies = LogNormalMs(Seeded(7), 2.0, 0.8, 4999);
        var bounds = latencies.Select(ms => LatencyHistogram.BoundsMs[LatencyHistogram.IndexOf(ms)]).ToArray();
        Assert.Equal(bounds.QuantileCustom(0.95, QuantileDefinition.R1), LatencyStatistics.P95FromBuckets(BucketsOf(latencies)));
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(0.1)]
    [InlineData(0.5)]
    public void Mann_whitney_matches_the_rank_sum_of_the_expanded_samples(double shift)
    {
        var rng = Seeded(3);
        var a = BucketsOf(LogNormalMs(rng, 1.5 + shift, 0.5, 400));
        var b = BucketsOf(LogNormalMs(rng, 1.5, 0.5, 700));
        var (u, p) = LatencyStatistics.MannWhitneyFromBuckets(a, b);
        var (expectedU, expectedP) = RankSumTest(Expand(a), Expand(b));
        Vectors.AssertClose(expectedU, u, "U");
        Vectors.AssertClose(expectedP, p, "p");
    }

    [Fact]
    public void Mann_whitney_gives_no_evidence_on_degenerate_inputs()
    {
        var sameBucket = BucketsOf(Enumerable.Repeat(4.0, 50));
        Assert.Equal(1.0, LatencyStatistics.MannWhitneyFromBuckets(sameBucket, sameBucket).PValue);
        Assert.Equal(new MannWhitneyResult(0.0, 1.0), LatencyStatistics.MannWhitneyFromBuckets(new long[N], sameBucket));
        Assert.Equal(new MannWhitneyResult(0.0, 1.0), LatencyStatistics.MannWhitneyFromBuckets(sameBucket, new long[N]));
    }

    private static readonly Gen<long[]> Buckets = Gen.Long[0, 40].Array[N];

    [Fact]
    public void Mann_whitney_is_a_probability_antisymmetric_and_monotone() =>
        Gen.Select(Buckets, Buckets).Sample((a, b) =>
        {
            var ab = LatencyStatistics.MannWhitneyFromBuckets(a, b);
            var ba = LatencyStatistics.MannWhitneyFromBuckets(b, a);
            Assert.InRange(ab.PValue, 0.0, 1.0);
            // U of one side plus U of the other counts every pair once.
            Assert.Equal((double)a.Sum() * b.Sum(), ab.U + ba.U);
            // The continuity correction makes the two one-sided p-values sum to at least 1.
            Assert.True(ab.PValue + ba.PValue >= 1.0 - 1e-12);
            if (a.Sum() > 0 && b.Sum() > 0 && a[0] > 0)
            {
                // Moving one candidate latency from the fastest bucket to the slowest: more evidence.
                var slower = (long[])a.Clone();
                slower[0]--;
                slower[^1]++;
                Assert.True(LatencyStatistics.MannWhitneyFromBuckets(slower, b).PValue <= ab.PValue + 1e-12);
            }
        }, iter: 300);

    private static double[] Expand(long[] buckets) =>
        buckets.SelectMany((count, index) => Enumerable.Repeat((double)index, (int)count)).ToArray();

    // Textbook Mann-Whitney on raw samples: U from average ranks, tie-corrected variance from the
    // tie groups of the pooled sample, continuity correction, normal upper tail.
    private static (double U, double P) RankSumTest(double[] a, double[] b)
    {
        var pooled = a.Concat(b).ToArray();
        var ranks = pooled.Ranks(RankDefinition.Average);
        double n1 = a.Length, n2 = b.Length, n = n1 + n2;
        var u = ranks.Take(a.Length).Sum() - (n1 * (n1 + 1) / 2);
        var ties = pooled.GroupBy(x => x).Sum(g => Math.Pow(g.Count(), 3) - g.Count());
        var sigma = Math.Sqrt(n1 * n2 / 12 * (n + 1 - (ties / (n * (n - 1)))));
        return (u, 1 - Normal.CDF(0, 1, (u - (n1 * n2 / 2) - 0.5) / sigma));
    }
}
